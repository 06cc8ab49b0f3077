//! Opening a deployment: the signed image verified, its config and the backbone's SHA-256
//! checked, the learner planned, and [`Deployment::start`] resuming the runtime from its
//! state folder; also the Linux board's signed image that `edgecl export` writes.

use super::step::Resumed;
use super::{Deployment, RunConfig, RunState, Runtime, StateDir};
use crate::device::signed;
use crate::host::board::{Board, BoardKind};
use crate::host::onnx::Backbone;
use crate::host::simulate;
use crate::learner::{Learner, LearnerConfig, Plan};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Deployment {
    /// Reads and verifies the image at `image` with the public key file `key` (as
    /// `edgecl keygen` writes it) and the ONNX `backbone`; `state` is the state folder.
    pub fn open(image: &Path, key: &Path, backbone: &Path, state: &Path) -> Result<Deployment> {
        let image_bytes = std::fs::read(image).with_context(|| format!("reading the image {}", image.display()))?;
        let key_text = std::fs::read_to_string(key).with_context(|| format!("reading the key {}", key.display()))?;
        let public = crate::host::device::read_key_file(
            &key_text,
            crate::host::device::KeyKind::Public,
            &key.display().to_string(),
        )?;
        let onnx = std::fs::read(backbone).with_context(|| format!("reading the backbone {}", backbone.display()))?;
        Deployment::from_bytes(
            &image_bytes,
            &image.display().to_string(),
            &public,
            &onnx,
            &backbone.display().to_string(),
            state,
        )
    }

    /// [`Deployment::open`] over bytes already read; the names are what errors call them.
    pub fn from_bytes(
        image: &[u8],
        image_name: &str,
        public_key: &[u8; 32],
        onnx: &[u8],
        onnx_name: &str,
        state: &Path,
    ) -> Result<Deployment> {
        let parts = signed::open(image, public_key).map_err(|e| anyhow::anyhow!("{image_name}: {e}"))?;
        let board = Board::load(parts.board).with_context(|| format!("{image_name}: the board it was made for"))?;
        if board.kind != BoardKind::Linux {
            bail!(
                "{image_name}: an image for {} ({} board); edgecl run deploys on Linux boards, the firmware runs microcontroller images",
                board.name,
                board.kind
            );
        }
        if !parts.backbone.is_empty() {
            bail!(
                "{image_name}: the image carries a backbone; a Linux board's image takes its backbone as an ONNX file"
            );
        }
        let text = std::str::from_utf8(parts.config)
            .map_err(|_| anyhow::anyhow!("{image_name}: its config is not UTF-8 text"))?;
        let config = RunConfig::parse(text).with_context(|| format!("{image_name}: its config"))?;
        let backbone_sha256 = sha256(onnx);
        match &config.backbone_sha256 {
            Some(want) if !want.eq_ignore_ascii_case(&hex(&backbone_sha256)) => bail!(
                "{onnx_name}: not the backbone this image was made for (its SHA-256 is {}, the image wants {want}); refusing to run",
                hex(&backbone_sha256)
            ),
            Some(_) => {}
            None => bail!("{image_name}: its config names no backbone_sha256 (edgecl export writes it)"),
        }
        let backbone = Backbone::per_sample(onnx, onnx_name)?;
        let learner = config.learner(&board, backbone.feature_width())?;
        let plan = Plan::new(&learner)?;
        let budget = config.budget.map_or(board.budget(), |b| b.0);
        plan.check(budget)
            .with_context(|| format!("{image_name}: the learner on {}", board.name))?;
        let weights = learner.dims.weight_count() + learner.dims.bias_count();
        if parts.head.len() != 4 * weights {
            bail!(
                "{image_name}: its head has {} bytes, the learner {:?} has {weights} parameters",
                parts.head.len(),
                learner.dims.as_slice()
            );
        }
        Ok(Deployment {
            board,
            learner,
            plan,
            head: parts.head.to_vec(),
            backbone,
            image_sha256: sha256(image),
            backbone_sha256,
            state: state.to_path_buf(),
            checkpoint_every: 0,
            estimates: config.estimates_importance(),
            packnet: match config.strategy()? {
                simulate::Strategy::PackNet(_) => Some(true),
                simulate::Strategy::PackNetReplay => Some(false),
                _ => None,
            },
            vae: matches!(
                learner.generator,
                Some(crate::learner::GeneratorConfig {
                    kind: crate::learner::GeneratorKind::Vae(_),
                    ..
                })
            ),
            config,
        })
    }

    /// Checkpoints every `n` updates as well as at task ends (0: at task ends only).
    pub fn checkpoint_every(&mut self, n: u64) {
        self.checkpoint_every = n;
    }

    /// Bytes of the arena [`Deployment::start`] needs: the learner's plan.
    pub fn arena_bytes(&self) -> usize {
        self.plan.total()
    }

    /// The board the image was made for.
    pub fn board(&self) -> &Board {
        &self.board
    }

    /// The image's config.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The learner's config.
    pub fn learner(&self) -> &LearnerConfig {
        &self.learner
    }

    /// The learner's plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The backbone (one sample at a time).
    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// Builds the learner in `arena` and resumes from the newest valid state in the state
    /// folder, or starts from the image's initial head when the folder holds none. A
    /// folder written under another image, backbone or config is refused.
    pub fn start<'a>(&'a self, arena: &'a mut [u8]) -> Result<Runtime<'a>> {
        let mut learner = Learner::new(&self.learner, arena)?;
        let mut dir = StateDir::open(&self.state)?;
        let loaded = dir.load()?;
        let classes = self.config.classes;
        let (state, resumed) = match loaded {
            None => {
                let (w, b) = learner.params_mut();
                if !signed::read_head(&self.head, w, b) {
                    bail!("the image's head is not the learner's size");
                }
                let state = RunState {
                    image_sha256: self.image_sha256,
                    backbone_sha256: self.backbone_sha256,
                    seen: vec![false; classes],
                    ..RunState::default()
                };
                (state, None)
            }
            Some(l) => {
                let folder = self.state.display();
                if l.state.image_sha256 != self.image_sha256 {
                    bail!(
                        "the state folder {folder} was written under another device image (SHA-256 {}, this one is {}); it is left as it is: give another --state, or move it away to start over",
                        hex(&l.state.image_sha256),
                        hex(&self.image_sha256)
                    );
                }
                if l.state.backbone_sha256 != self.backbone_sha256 {
                    bail!(
                        "the state folder {folder} was written with another backbone (SHA-256 {}, this one is {}); it is left as it is",
                        hex(&l.state.backbone_sha256),
                        hex(&self.backbone_sha256)
                    );
                }
                if l.state.seen.len() != classes {
                    bail!(
                        "the state folder {folder} holds a state of {} classes, the image's head has {classes}",
                        l.state.seen.len()
                    );
                }
                learner.read_checkpoint(&l.learner).map_err(|e| {
                    anyhow::anyhow!(
                        "the state folder {folder} holds a learner this image's config did not make ({e}); it is left as it is"
                    )
                })?;
                let resumed = Resumed {
                    path: l.path,
                    rejected: l.rejected,
                };
                (l.state, Some(resumed))
            }
        };
        let (b, f) = (self.learner.batch_size, self.learner.dims.input());
        let capacity = learner.checkpoint_capacity();
        Ok(Runtime {
            dep: self,
            learner,
            state,
            dir,
            xb: vec![0.0; b * f],
            yb: vec![0; b],
            k: 0,
            feat: vec![0.0; f],
            pending: None,
            holdout: None,
            image: vec![0; capacity],
            checkpoints: 0,
            since_checkpoint: 0,
            checkpoint_due: false,
            resumed,
        })
    }
}

/// A Linux board's signed device image: the run config `config_text` with the SHA-256 of
/// the ONNX backbone `onnx` added (`backbone_sha256`), the head's initial weights (the
/// learner's seeded initialisation, as the simulator's), and no backbone payload.
pub fn linux_image(
    board: &Board,
    config_text: &str,
    onnx: &[u8],
    onnx_name: &str,
    secret: &[u8; 32],
) -> Result<Vec<u8>> {
    if board.kind != BoardKind::Linux {
        bail!("{} is a {} board: its image carries an int8 backbone and a device config (edgecl export without a run config)", board.name, board.kind);
    }
    let digest = hex(&sha256(onnx));
    let given = RunConfig::parse(config_text)?;
    let text = match &given.backbone_sha256 {
        Some(d) if d.eq_ignore_ascii_case(&digest) => config_text.to_string(),
        Some(d) => bail!("the config's backbone_sha256 is {d}, but {onnx_name} has {digest}"),
        None => format!(
            "{}\n# the ONNX backbone this head was made for\nbackbone_sha256 = \"{digest}\"\n",
            config_text.trim_end()
        ),
    };
    let config = RunConfig::parse(&text)?;
    let backbone = Backbone::from_bytes(onnx, onnx_name)?;
    let learner = config.learner(board, backbone.feature_width())?;
    let plan = Plan::new(&learner)?;
    plan.check(config.budget.map_or(board.budget(), |b| b.0))
        .with_context(|| format!("the learner {:?} on {}", learner.dims.as_slice(), board.name))?;
    let head = crate::host::device::initial_head(&learner)?;
    crate::host::device::sign_image(&board.name, text.as_bytes(), &head, &[], secret)
}
