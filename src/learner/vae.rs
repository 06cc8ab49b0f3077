//! A tiny conditional variational autoencoder (Kingma & Welling 2014; Sohn et al. 2015)
//! for deep generative replay (Shin et al. 2017), built from the core's dense layers
//! ([`crate::learner::network`]) and trained on the device beside the head.
//!
//! Encoder `[x | onehot(y)] -> hidden (ReLU) -> [mu | log var]` of a `latent`-wide code;
//! decoder `[z | onehot(y)] -> hidden (ReLU) -> x`, with a Bernoulli likelihood on
//! sigmoid outputs (pixels in [0, 1]) or a unit-variance Gaussian one on linear outputs
//! (features). The loss is the negative ELBO per sample, summed over the input and the
//! code, averaged over the batch:
//! `recon(x, dec(z, y)) + 1/2 sum_q (mu_q^2 + exp(lv_q) - 1 - lv_q)`, with
//! `z = mu + exp(lv / 2) * eps` (the reparameterisation trick).
//!
//! Deep generative replay: while a task trains, the generator trains on the batch the head
//! sees, the task's real samples mixed with replayed samples of older classes; the replayed
//! samples come from a frozen copy of the decoder taken at the end of the previous task
//! ([`Replaying::commit`](crate::learner::learner::Replaying::commit)), so one fixed-size
//! generator covers every task seen.

use crate::learner::kernels::{gemm, MatRef};
use crate::learner::rng::Rng;
use crate::learner::{math, network, optim, Error, Kernels, LayerDims, Optimizer};

/// The decoder's output distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Likelihood {
    /// Sigmoid outputs, binary cross-entropy: inputs in `[0, 1]` (pixels).
    Bernoulli,
    /// Linear outputs, half the squared error: any real inputs (features).
    Gaussian,
}

/// The VAE's shape and training.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct VaeConfig {
    /// Hidden units of the encoder and of the decoder.
    pub hidden: usize,
    /// Width of the code `z`.
    pub latent: usize,
    /// The decoder's output distribution.
    pub likelihood: Likelihood,
    /// Its optimizer (its own state, in the arena).
    pub optimizer: Optimizer,
}

impl VaeConfig {
    /// Checks the widths and the optimizer.
    pub fn validate(&self) -> Result<(), Error> {
        if self.hidden == 0 || self.latent == 0 {
            return Err(Error::BadConfig(
                "a VAE needs at least one hidden unit and one latent unit",
            ));
        }
        self.optimizer.validate()
    }

    /// The encoder's widths for inputs of `input` features and `classes` conditions.
    pub fn encoder(&self, input: usize, classes: usize) -> Result<LayerDims, Error> {
        let latent2 = self
            .latent
            .checked_mul(2)
            .ok_or(Error::BadConfig("VAE latent too wide"))?;
        LayerDims::new(&[input.saturating_add(classes), self.hidden, latent2])
    }

    /// The decoder's widths.
    pub fn decoder(&self, input: usize, classes: usize) -> Result<LayerDims, Error> {
        LayerDims::new(&[self.latent.saturating_add(classes), self.hidden, input])
    }
}

/// How the reparameterisation noise is chosen.
#[derive(Debug)]
pub enum Noise<'r> {
    /// Drawn from the generator.
    Draw(&'r mut Rng),
    /// Given, `n x latent` (finite-difference checks).
    Fixed(&'r [f32]),
}

/// The VAE's state over slices of the arena.
#[derive(Debug)]
pub struct Vae<'a> {
    pub(crate) config: VaeConfig,
    pub(crate) enc: LayerDims,
    pub(crate) dec: LayerDims,
    pub(crate) classes: usize,
    pub(crate) features: usize,
    pub(crate) batch: usize,
    pub(crate) counts: &'a mut [u32],
    /// The counts at the last commit: the classes the replay decoder has learned.
    pub(crate) committed: &'a mut [u32],
    /// Encoder weights and biases, then the decoder's.
    pub(crate) params: &'a mut [f32],
    pub(crate) grads: &'a mut [f32],
    pub(crate) first: &'a mut [f32],
    pub(crate) second: &'a mut [f32],
    /// The decoder replayed from: a copy taken at the last commit.
    pub(crate) replay: &'a mut [f32],
    /// `batch x (features + classes)` encoder inputs, the encoder's activations, the
    /// noise, the decoder's inputs and activations, the decoder input's gradient.
    pub(crate) enc_in: &'a mut [f32],
    pub(crate) enc_acts: &'a mut [f32],
    pub(crate) eps: &'a mut [f32],
    pub(crate) dec_in: &'a mut [f32],
    pub(crate) dec_acts: &'a mut [f32],
    pub(crate) dz: &'a mut [f32],
    pub(crate) deltas: &'a mut [f32],
    pub(crate) steps: u32,
}

/// Sizes of a VAE's buffers, for the plan and the carve.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VaeSizes {
    pub params: usize,
    pub decoder: usize,
    pub enc_in: usize,
    pub enc_acts: usize,
    pub eps: usize,
    pub dec_in: usize,
    pub dec_acts: usize,
    pub deltas: usize,
    pub widest: usize,
}

impl VaeSizes {
    /// `None` when a count overflows.
    pub(crate) fn of(config: &VaeConfig, input: usize, classes: usize, batch: usize) -> Result<Option<Self>, Error> {
        let enc = config.encoder(input, classes)?;
        let dec = config.decoder(input, classes)?;
        let f = || -> Option<VaeSizes> {
            let (ep, dp) = (enc.checked_params()?, dec.checked_params()?);
            let latent = config.latent;
            let widest = enc.widest_output().max(dec.widest_output()).max(dec.input());
            Some(VaeSizes {
                params: ep.checked_add(dp)?,
                decoder: dp,
                enc_in: batch.checked_mul(enc.input())?,
                enc_acts: batch.checked_mul(config.hidden.checked_add(2 * latent)?)?,
                eps: batch.checked_mul(latent)?,
                dec_in: batch.checked_mul(dec.input())?,
                dec_acts: batch.checked_mul(config.hidden.checked_add(input)?)?,
                deltas: batch.checked_mul(widest)?.checked_mul(2)?,
                widest: widest.max(enc.input()),
            })
        };
        Ok(f())
    }
}

impl Vae<'_> {
    /// Samples observed of each class by the last commit: the classes the replay decoder
    /// has learned (a class observed since is not replayed until the next commit).
    pub fn replayable(&self) -> &[u32] {
        self.committed
    }

    /// Samples observed of each class so far.
    pub fn observed(&self) -> &[u32] {
        self.counts
    }

    /// Parameters: encoder weights, biases, then decoder weights, biases.
    pub fn params(&self) -> &[f32] {
        self.params
    }

    /// Mutable parameters (finite-difference checks).
    pub fn params_mut(&mut self) -> &mut [f32] {
        self.params
    }

    /// The last computed gradient of the loss, in the parameters' layout.
    pub fn gradients(&self) -> &[f32] {
        self.grads
    }

    /// Updates taken.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// Initialises the weights like PyTorch's `Linear` (uniform in `+-1/sqrt(fan_in)`).
    pub(crate) fn init(&mut self, rng: &mut Rng) {
        let enc_params = self.params.len() - self.replay.len();
        let (e, d) = self.params.split_at_mut(enc_params);
        for (dims, p) in [(self.enc, e), (self.dec, d)] {
            let (w, b) = p.split_at_mut(dims.weight_count());
            for l in 0..dims.layers() {
                let (i, o) = dims.layer(l);
                let bound = 1.0 / math::sqrt(i as f32);
                let at = dims.weight_offset(l);
                w[at..at + i * o]
                    .iter_mut()
                    .for_each(|v| *v = rng.uniform_range(-bound, bound));
                let at = dims.bias_offset(l);
                b[at..at + o]
                    .iter_mut()
                    .for_each(|v| *v = rng.uniform_range(-bound, bound));
            }
        }
    }

    /// Freezes the current decoder as the one replayed from, with the classes it has
    /// learned.
    pub(crate) fn commit(&mut self) {
        let at = self.params.len() - self.replay.len();
        self.replay.copy_from_slice(&self.params[at..]);
        self.committed.copy_from_slice(self.counts);
    }

    /// Computes the gradient of the batch's mean negative ELBO into [`Vae::gradients`]
    /// and returns the loss. The caller has checked shapes, values and labels.
    pub(crate) fn compute_gradients(
        &mut self,
        x: &[f32],
        labels: &[u16],
        noise: Noise<'_>,
        kernels: Kernels,
        pack: &mut [f32],
    ) -> Result<f32, Error> {
        let (n, d, c, z) = (labels.len(), self.features, self.classes, self.config.latent);
        let h = self.config.hidden;
        let (b, enc, dec) = (self.batch, self.enc, self.dec);
        let ep = enc.checked_params().ok_or(Error::Internal("VAE sizes changed"))?;
        let inv_n = 1.0 / n as f32;
        // Encoder.
        for ((row, xi), &y) in self.enc_in.chunks_exact_mut(d + c).zip(x.chunks_exact(d)).zip(labels) {
            row[..d].copy_from_slice(xi);
            one_hot(&mut row[d..], y);
        }
        let (ew, rest) = self.params.split_at(enc.weight_count());
        let (eb, dp) = rest.split_at(ep - enc.weight_count());
        network::forward(
            kernels,
            &enc,
            ew,
            eb,
            &self.enc_in[..n * (d + c)],
            n,
            b,
            self.enc_acts,
            pack,
        )?;
        // Code: z = mu + exp(lv / 2) eps.
        let stats_at = b * h;
        let mut kl = 0.0f32;
        match noise {
            Noise::Draw(rng) => self.eps[..n * z].iter_mut().for_each(|e| *e = rng.normal()),
            Noise::Fixed(e) => {
                if e.len() != n * z {
                    return Err(Error::InputShape {
                        got: e.len(),
                        expected: n * z,
                    });
                }
                self.eps[..n * z].copy_from_slice(e);
            }
        }
        for (i, &y) in labels.iter().enumerate() {
            let stats = &self.enc_acts[stats_at + i * 2 * z..stats_at + (i + 1) * 2 * z];
            let row = &mut self.dec_in[i * (z + c)..(i + 1) * (z + c)];
            for q in 0..z {
                let (mu, lv) = (stats[q], stats[z + q]);
                let sd = math::exp(0.5 * lv);
                row[q] = mu + sd * self.eps[i * z + q];
                kl += 0.5 * (mu * mu + sd * sd - 1.0 - lv);
            }
            one_hot(&mut row[z..], y);
        }
        // Decoder and reconstruction loss; dL/dout into the first half of the deltas.
        decode(
            kernels,
            &dec,
            dp,
            &self.dec_in[..n * (z + c)],
            n,
            b,
            self.dec_acts,
            pack,
        )?;
        let out = &self.dec_acts[b * h..b * h + n * d];
        let mut recon = 0.0f32;
        for ((&o, &t), g) in out.iter().zip(&x[..n * d]).zip(self.deltas.iter_mut()) {
            match self.config.likelihood {
                Likelihood::Bernoulli => {
                    // softplus(o) - t o, stable for either sign of o.
                    recon += o.max(0.0) - t * o + math::ln(1.0 + math::exp(-o.abs()));
                    *g = (1.0 / (1.0 + math::exp(-o)) - t) * inv_n;
                }
                Likelihood::Gaussian => {
                    recon += 0.5 * (o - t) * (o - t);
                    *g = (o - t) * inv_n;
                }
            }
        }
        let loss = (recon + kl) * inv_n;
        if !loss.is_finite() {
            return Err(Error::Diverged);
        }
        let (egrads, dgrads) = self.grads.split_at_mut(ep);
        let dw = &self.params[ep..ep + dec.weight_count()];
        network::backward(
            kernels,
            &dec,
            dw,
            &self.dec_in[..n * (z + c)],
            n,
            b,
            self.dec_acts,
            dgrads,
            self.deltas,
            pack,
        )?;
        // dL/d(decoder input): the hidden delta (recomputed from the output delta, which
        // backward leaves in the first half) times W_0.
        decoder_input_gradient(kernels, &dec, dw, self.dec_acts, self.deltas, n, self.dz, pack)?;
        // Through the reparameterisation into the encoder's outputs.
        for i in 0..n {
            let stats = &self.enc_acts[stats_at + i * 2 * z..stats_at + (i + 1) * 2 * z];
            let g = &mut self.deltas[i * 2 * z..(i + 1) * 2 * z];
            for q in 0..z {
                let (mu, lv) = (stats[q], stats[z + q]);
                let dz = self.dz[i * (z + c) + q];
                let sd = math::exp(0.5 * lv);
                g[q] = dz + mu * inv_n;
                g[z + q] = dz * 0.5 * sd * self.eps[i * z + q] + 0.5 * (sd * sd - 1.0) * inv_n;
            }
        }
        let ew = &self.params[..enc.weight_count()];
        network::backward(
            kernels,
            &enc,
            ew,
            &self.enc_in[..n * (d + c)],
            n,
            b,
            self.enc_acts,
            egrads,
            self.deltas,
            pack,
        )?;
        if let Some(index) = self.grads.iter().position(|g| !g.is_finite()) {
            return Err(Error::NonFiniteGradient { index });
        }
        Ok(loss)
    }

    /// One optimizer step from [`Vae::gradients`].
    pub(crate) fn apply_gradients(&mut self) {
        self.steps = self.steps.saturating_add(1);
        optim::update(
            self.config.optimizer,
            self.params,
            self.grads,
            self.first,
            self.second,
            self.steps,
        );
    }

    /// Decodes one sample per label into `out` (`labels.len()` rows of the input width)
    /// with the committed decoder, `z` standard normal. The caller has checked that every
    /// label was observed.
    pub(crate) fn generate(
        &mut self,
        labels: &[u16],
        out: &mut [f32],
        rng: &mut Rng,
        kernels: Kernels,
        pack: &mut [f32],
    ) -> Result<(), Error> {
        let (d, c, z, h, b) = (
            self.features,
            self.classes,
            self.config.latent,
            self.config.hidden,
            self.batch,
        );
        let dec = self.dec;
        for (ys, rows) in labels.chunks(b).zip(out.chunks_mut(b * d)) {
            let n = ys.len();
            for (row, &y) in self.dec_in.chunks_exact_mut(z + c).zip(ys) {
                row[..z].iter_mut().for_each(|v| *v = rng.normal());
                one_hot(&mut row[z..], y);
            }
            decode(
                kernels,
                &dec,
                self.replay,
                &self.dec_in[..n * (z + c)],
                n,
                b,
                self.dec_acts,
                pack,
            )?;
            let o = &self.dec_acts[b * h..b * h + n * d];
            for (dst, &v) in rows.iter_mut().zip(o) {
                *dst = match self.config.likelihood {
                    Likelihood::Bernoulli => 1.0 / (1.0 + math::exp(-v)),
                    Likelihood::Gaussian => v,
                };
            }
        }
        Ok(())
    }
}

/// Writes the condition: 1 at `y`, 0 elsewhere.
fn one_hot(row: &mut [f32], y: u16) {
    row.fill(0.0);
    row[y as usize] = 1.0;
}

/// The decoder's forward pass with `params` (its weights, then biases).
#[allow(clippy::too_many_arguments)]
fn decode(
    kernels: Kernels,
    dec: &LayerDims,
    params: &[f32],
    input: &[f32],
    n: usize,
    batch: usize,
    acts: &mut [f32],
    pack: &mut [f32],
) -> Result<(), Error> {
    let (w, b) = params.split_at(dec.weight_count());
    network::forward(kernels, dec, w, b, input, n, batch, acts, pack)
}

/// The gradient of the loss with respect to the decoder's input, `n x (latent + classes)`,
/// into `dz`: the hidden layer's delta (`W_1^T` times the output delta, through the ReLU)
/// times `W_0`. [`network::backward`] has just used the output delta, which sits in the
/// first half of `deltas`.
#[allow(clippy::too_many_arguments)]
fn decoder_input_gradient(
    kernels: Kernels,
    dec: &LayerDims,
    weights: &[f32],
    acts: &[f32],
    deltas: &mut [f32],
    n: usize,
    dz: &mut [f32],
    pack: &mut [f32],
) -> Result<(), Error> {
    const SHAPE: Error = Error::Internal("VAE shapes disagree with the plan");
    let (d_in, hidden) = dec.layer(0);
    let (_, out) = dec.layer(1);
    let half = deltas.len() / 2;
    let (d_out, d_hidden) = deltas.split_at_mut(half);
    let w1 = &weights[dec.weight_offset(1)..dec.weight_offset(1) + out * hidden];
    let dh = &mut d_hidden[..n * hidden];
    let dm = MatRef::row_major(&d_out[..n * out], n, out).ok_or(SHAPE)?;
    let wm = MatRef::row_major(w1, out, hidden).ok_or(SHAPE)?;
    if !gemm(kernels, dm, wm, dh, false, pack) {
        return Err(SHAPE);
    }
    for (g, &a) in dh.iter_mut().zip(&acts[..n * hidden]) {
        if a <= 0.0 {
            *g = 0.0;
        }
    }
    let w0 = &weights[..hidden * d_in];
    let hm = MatRef::row_major(dh, n, hidden).ok_or(SHAPE)?;
    let w0m = MatRef::row_major(w0, hidden, d_in).ok_or(SHAPE)?;
    if !gemm(kernels, hm, w0m, &mut dz[..n * d_in], false, pack) {
        return Err(SHAPE);
    }
    Ok(())
}
