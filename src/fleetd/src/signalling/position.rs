//! Where each waiting patient stands: after every input the router tells each waiting kiosk
//! whose place changed how many visits are before it ([`ServerToKiosk::Position`]). The rule,
//! kept simple and honest: the walk-in visits of the same clinic that arrived earlier and
//! still wait; a visit that came with a visit code waits for its own clinician only, so it is
//! next (0). Part of the pure router ([`super::Router`]).

use super::*;

impl Router {
    /// How many visits are before waiting visit `i`; `None` once a clinician has it.
    fn ahead_of(&self, i: usize) -> Option<u32> {
        let v = &self.visits[i];
        if v.clinician.is_some() {
            return None;
        }
        if v.code.is_some() {
            return Some(0);
        }
        let before = self.visits[..i]
            .iter()
            .filter(|w| w.clinician.is_none() && w.code.is_none() && w.clinic == v.clinic);
        Some(u32::try_from(before.count()).unwrap_or(u32::MAX))
    }

    /// Tells each waiting kiosk whose place changed since it was last told.
    pub(super) fn tell_positions(&mut self, out: &mut Vec<Output>) {
        let ahead: Vec<_> = (0..self.visits.len()).map(|i| self.ahead_of(i)).collect();
        for (v, ahead) in self.visits.iter_mut().zip(ahead) {
            let Some(ahead) = ahead.filter(|&a| v.told_ahead != Some(a)) else { continue };
            v.told_ahead = Some(ahead);
            let msg = ServerToKiosk::Position { visit_id: v.visit_id.clone(), ahead };
            out.push(Output::ToKiosk { device_id: v.device_id.clone(), msg });
        }
    }
}
