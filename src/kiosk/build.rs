fn main() {
    slint_build::compile("../../ui/kiosk.slint").expect("ui/kiosk.slint compiles");
}
