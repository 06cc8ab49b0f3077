//! The checkpoint decoder on any bytes: `Learner::read_checkpoint` into the firmware's
//! learner (and `checkpoint::peek`, which storage uses to choose a slot) must return an
//! error or load, never panic.
#![no_main]

use edgecl::device::DeviceConfig;
use edgecl::learner::checkpoint;
use edgecl::learner::learner::ClassRange;
use edgecl::{Active, Learner};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = checkpoint::peek(data);
    // Most inputs would stop at the CRC; fix it up so the fuzzer reaches what is behind
    // it (a CRC is no proof against crafted bytes).
    let mut bytes = data.to_vec();
    if bytes.len() >= checkpoint::HEADER {
        let len = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
        if let Some(end) = len.checked_add(checkpoint::HEADER).filter(|&e| e <= bytes.len()) {
            let crc = checkpoint::crc32(&[&bytes[..16], &bytes[checkpoint::HEADER..end]]);
            bytes[16..20].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let config = DeviceConfig::default()
        .learner(64)
        .expect("the default config is valid");
    let mut arena = vec![0u8; 1 << 16];
    let mut learner = Learner::new(&config, &mut arena).expect("it fits");
    if learner.read_checkpoint(&bytes).is_ok() {
        // A loaded state keeps working: infer, observe, commit, replay, learn.
        let x = [0.5f32; 64];
        let _ = learner.logits(&x);
        let mut r = learner.replaying().expect("the default config replays");
        let _ = r.observe(&x, 3);
        let _ = r.commit();
        let mut rows = [0f32; 4 * 64];
        let mut labels = [0u16; 4];
        let _ = r.fill(&mut rows, &mut labels, ClassRange { start: 8, end: 10 });
        let _ = learner.train_step(&rows, &labels, Active::All);
    }
});
