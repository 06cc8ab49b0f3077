//! The host side (feature `std`): data, scenarios, boards, the simulator and reports.

pub mod idx;
