//! The checkpoint decoder on any bytes: `Learner::read_checkpoint` into the firmware's
//! learner (and `checkpoint::peek`, which storage uses to choose a slot) must return an
//! error or load, never panic.
#![no_main]

use edgecl::device::DeviceConfig;
use edgecl::learner::checkpoint;
use edgecl::Learner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = checkpoint::peek(data);
    let config = DeviceConfig::default()
        .learner(64)
        .expect("the default config is valid");
    let mut arena = vec![0u8; 1 << 16];
    let mut learner = Learner::new(&config, &mut arena).expect("it fits");
    if learner.read_checkpoint(data).is_ok() {
        // A loaded state keeps working.
        let x = [0.5f32; 64];
        let _ = learner.logits(&x);
    }
});
