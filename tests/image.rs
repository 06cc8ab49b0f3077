#![cfg(feature = "onnx")]
//! Signed device images (`cargo test signature`): a good image verifies and carries the
//! learner's initial head; each kind of bad image has its own error; a flipped bit
//! anywhere in a signed image is rejected.

use edgecl::device::signed::{self, verify};
use edgecl::device::{DeviceConfig, DeviceError};
use edgecl::host::board::Board;
use edgecl::host::device::{backbone_image, device_image, public_key};
use edgecl::host::onnx::BackboneModel;
use edgecl::Learner;

const SECRET: [u8; 32] = [7; 32];
const CONFIG: &str = "strategy = \"fine-tune\"\nclasses = 4\nbatch = 2\n";

fn board() -> Board {
    Board::load("netduinoplus2").unwrap()
}

fn small() -> Vec<u8> {
    let backbone = backbone_image(&BackboneModel::random_dense(&[6, 3], 5), &[]).unwrap();
    device_image(&board(), CONFIG, &backbone, 3, &SECRET).unwrap()
}

fn check(bytes: &[u8]) -> Result<(), DeviceError> {
    verify(bytes, &public_key(&SECRET), "netduinoplus2", 98304).map(|_| ())
}

#[test]
fn signature_a_good_image_verifies_and_carries_the_initial_head() {
    let image = small();
    let v = verify(&image, &public_key(&SECRET), "netduinoplus2", 98304).unwrap();
    assert_eq!(
        (v.board, v.config),
        ("netduinoplus2", DeviceConfig::parse(CONFIG).unwrap())
    );
    assert_eq!(v.backbone.map(|b| (b.input(), b.output())), Some((6, 3)));
    let config = DeviceConfig::parse(CONFIG).unwrap().learner(3).unwrap();
    let mut a = vec![0u8; 1 << 14];
    let fresh = Learner::new(&config, &mut a).unwrap();
    let mut b = vec![0u8; 1 << 14];
    let mut loaded = Learner::new(&config, &mut b).unwrap();
    let (w, bias) = loaded.params_mut();
    w.fill(0.0);
    bias.fill(0.0);
    v.load_head(w, bias).unwrap();
    assert_eq!((loaded.weights(), loaded.biases()), (fresh.weights(), fresh.biases()));
}

/// Re-signs `image` after an edit, so that only the edited property is wrong.
fn resign(mut image: Vec<u8>, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    image.truncate(image.len() - signed::SIGNATURE);
    edit(&mut image);
    // Recompute the CRC over the edited header and payload.
    let payload = image[signed::HEADER..].to_vec();
    let sizes: Vec<usize> = (0..3)
        .map(|i| u32::from_le_bytes(image[32 + 4 * i..36 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let board = std::str::from_utf8(&image[8..32])
        .unwrap()
        .trim_end_matches('\0')
        .to_string();
    let (config, rest) = payload.split_at(sizes[0].min(payload.len()));
    let (head, backbone) = rest.split_at(sizes[1].min(rest.len()));
    let mut header = signed::header(&board, config, head, backbone).unwrap();
    header[..8].copy_from_slice(&image[..8]); // keep an edited magic or version
    let crc = edgecl::learner::checkpoint::crc32(&[&header[..44], &payload]);
    header[44..48].copy_from_slice(&crc.to_le_bytes());
    image[..signed::HEADER].copy_from_slice(&header);
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(SECRET));
    let signature = pair.sk.sign(&image, None);
    image.extend_from_slice(&signature[..]);
    image
}

#[test]
fn signature_bad_magic() {
    let image = resign(small(), |i| i[0] = b'X');
    assert!(matches!(check(&image), Err(DeviceError::BadMagic { .. })));
}

#[test]
fn signature_wrong_version() {
    let image = resign(small(), |i| i[4] = 3);
    assert!(matches!(check(&image), Err(DeviceError::Version { got: 3, .. })));
    // Format 1 carried the config as text: refused, saying to export again.
    let image = resign(small(), |i| i[4] = 1);
    let e = check(&image).unwrap_err();
    assert!(
        matches!(
            e,
            DeviceError::Version {
                got: 1,
                supported: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("export it again"), "{e}");
}

#[test]
fn signature_wrong_board() {
    let image = resign(small(), |i| {
        i[8..32].copy_from_slice(b"rp-pico\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")
    });
    assert_eq!(check(&image), Err(DeviceError::WrongBoard));
    // The same image verifies for the board it names.
    assert!(verify(&image, &public_key(&SECRET), "rp-pico", 1 << 20).is_ok());
}

#[test]
fn signature_truncated() {
    let image = small();
    for len in [
        0,
        10,
        signed::HEADER + signed::SIGNATURE - 1,
        image.len() / 2,
        image.len() - 1,
    ] {
        assert!(
            matches!(check(&image[..len]), Err(DeviceError::Truncated { .. })),
            "{len}"
        );
    }
}

#[test]
fn signature_bad_crc() {
    let mut image = small();
    image[signed::HEADER + 3] ^= 0x20; // the config text, signature untouched
    assert!(matches!(check(&image), Err(DeviceError::BadCrc { .. })));
}

#[test]
fn signature_bad_signature() {
    let image = small();
    // Signed by another key: CRC right, signature wrong.
    let other = [9u8; 32];
    assert_eq!(
        verify(&image, &public_key(&other), "netduinoplus2", 98304).map(|_| ()),
        Err(DeviceError::BadSignature)
    );
    let mut forged = image.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(check(&forged), Err(DeviceError::BadSignature));
}

#[test]
fn signature_over_budget() {
    let image = small();
    assert!(matches!(
        verify(&image, &public_key(&SECRET), "netduinoplus2", 100),
        Err(DeviceError::OverBudget { arena: 100, .. })
    ));
    // And export refuses a config over the board's budget.
    let backbone = backbone_image(&BackboneModel::random_dense(&[6, 3], 5), &[]).unwrap();
    let err = device_image(&board(), "hidden = 3000\n", &backbone, 3, &SECRET).unwrap_err();
    assert!(err.to_string().contains("over budget"), "{err}");
}

#[test]
fn signature_every_flipped_bit_of_a_signed_image_is_rejected() {
    let image = small();
    check(&image).unwrap();
    for bit in 0..image.len() * 8 {
        let mut bad = image.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            check(&bad).is_err(),
            "bit {bit} of {} flipped was accepted",
            image.len() * 8
        );
    }
}
