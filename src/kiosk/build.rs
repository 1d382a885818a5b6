//! Compiles the screens in `ui/` with the Spanish (and any further) translations bundled, and
//! with the element information the accessibility walk and `tap <label>` need.

fn main() {
    let config = slint_build::CompilerConfiguration::new()
        .with_bundled_translations("../../ui/translations")
        .with_default_translation_context(slint_build::DefaultTranslationContext::None)
        .with_debug_info(true);
    slint_build::compile_with_config("../../ui/kiosk.slint", config)
        .expect("ui/kiosk.slint compiles");
    // slint-build tracks the .slint files; the catalogues are ours to track.
    println!("cargo:rerun-if-changed=../../ui/translations");
}
