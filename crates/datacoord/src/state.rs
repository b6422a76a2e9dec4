//! The component state as `GetComponentStates` reports it.

use std::sync::atomic::{AtomicI32, Ordering};

use milvus_types::StateCode;

const UNSET: i32 = -1;

/// Holds the `StateCode`; before anything is stored it reads as Abnormal, as in 2.3.5.
#[derive(Debug)]
pub(crate) struct StateCell(AtomicI32);

impl StateCell {
    pub(crate) fn new() -> Self {
        Self(AtomicI32::new(UNSET))
    }

    pub(crate) fn get(&self) -> StateCode {
        StateCode::try_from(self.0.load(Ordering::Acquire)).unwrap_or(StateCode::Abnormal)
    }

    pub(crate) fn set(&self, code: StateCode) {
        self.0.store(code as i32, Ordering::Release);
    }

    /// Moves `from` → `to` atomically; false when the state was something else.
    pub(crate) fn transition(&self, from: StateCode, to: StateCode) -> bool {
        self.0
            .compare_exchange(from as i32, to as i32, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_reads_abnormal_and_transition_needs_the_expected_state() {
        let cell = StateCell::new();
        assert_eq!(cell.get(), StateCode::Abnormal);
        cell.set(StateCode::StandBy);
        assert!(!cell.transition(StateCode::Healthy, StateCode::Abnormal));
        assert_eq!(cell.get(), StateCode::StandBy);
        cell.set(StateCode::Healthy);
        assert!(cell.transition(StateCode::Healthy, StateCode::Abnormal));
        assert_eq!(cell.get(), StateCode::Abnormal);
    }
}
