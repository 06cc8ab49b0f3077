//! Progressive columns (Rusu et al. 2016) for the head: a new column per task, with
//! lateral connections from the earlier columns' hidden activations; old columns frozen.
//!
//! Column `k` (0-based) has `hidden` layers of `width` units and an output layer of
//! `classes`. Its layer 0 reads the input; its layer `l >= 1` reads the layer `l - 1`
//! outputs of columns `0..=k`, through one `out x width` block per column (its own
//! weights and `k` lateral blocks); there are no adapters. Training touches only the newest
//! column, so gradients and optimizer state are sized for one column (the largest the plan
//! allows) and reset when a column is added. The plan reserves `max_columns` columns up
//! front, so the arena never grows; a task past them is refused
//! ([`Error::ColumnsExhausted`]).
//!
//! Parameters of column `k`, end to end: `W0` (`width x input`), `b0`, then for each later
//! layer its `k + 1` blocks (`out x width`, row-major) and its biases.

use crate::learner::arena::Space;
use crate::learner::arena::{mul, OVERFLOW};
use crate::learner::dims::{best_class, check_input, Active};
use crate::learner::kernels::fast;
use crate::learner::kernels::{gemm, MatRef};
use crate::learner::names;
use crate::learner::rng::Rng;
use crate::learner::{math, network, optim, Arena, Error, Kernels, Optimizer, Plan};

impl Plan {
    /// The plan of a progressive-columns learner: every column the config reserves, the
    /// largest column's gradients and optimizer state, one batch's activations (every
    /// column's hidden layers and one column's logits) and deltas, counted by the layout
    /// [`Columns::new`] carves.
    pub fn columns(config: &ColumnsConfig) -> Result<Plan, Error> {
        config.validate()?;
        let mut plan = Plan::empty();
        layout(config, &mut plan)?;
        plan.finish()
    }
}

/// The slices of a [`Columns`]: parameters of every column, the largest column's
/// gradients and optimizer state, activations, deltas and packing.
struct ColumnParts<'a> {
    params: &'a mut [f32],
    grads: &'a mut [f32],
    opt_state: &'a mut [f32],
    acts: &'a mut [f32],
    deltas: &'a mut [f32],
    pack: &'a mut [f32],
}

/// The layout of a [`Columns`] learner, counted by [`Plan::columns`] and carved by
/// [`Columns::new`].
fn layout<'a>(c: &ColumnsConfig, space: &mut impl Space<'a>) -> Result<ColumnParts<'a>, Error> {
    let mut total = 0usize;
    for k in 0..c.max_columns {
        total = total
            .checked_add(c.checked_column_params(k).ok_or(OVERFLOW)?)
            .ok_or(OVERFLOW)?;
    }
    let largest = c.checked_column_params(c.max_columns - 1).ok_or(OVERFLOW)?;
    let acts = mul(mul(mul(c.hidden, c.max_columns)?, c.batch_size)?, c.width)?
        .checked_add(mul(c.batch_size, c.classes)?)
        .ok_or(OVERFLOW)?;
    Ok(ColumnParts {
        params: space.take(names::COLUMNS, total)?,
        grads: space.take(names::GRADIENTS, largest)?,
        opt_state: space.take(names::OPTIMIZER, mul(c.optimizer.state_vectors(), largest)?)?,
        acts: space.take(names::ACTIVATIONS, acts)?,
        deltas: space.take(names::DELTAS, mul(2 * c.batch_size, c.width.max(c.classes))?)?,
        pack: match c.kernels {
            Kernels::Fast => {
                let widest = c.input.max(c.width).max(c.classes).max(c.batch_size);
                space.take(names::PACKING, fast::packing_len(widest))?
            }
            Kernels::Reference => &mut [],
        },
    })
}

/// Most hidden layers a column may have.
pub const MAX_HIDDEN: usize = 4;

/// A progressive learner's shape and training settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColumnsConfig {
    /// Input width (the backbone's features, or pixels).
    pub input: usize,
    /// Units of each hidden layer of each column.
    pub width: usize,
    /// Hidden layers per column (1 to [`MAX_HIDDEN`]).
    pub hidden: usize,
    /// Output classes of each column (tasks pick theirs with [`Active`]).
    pub classes: usize,
    /// Columns the plan reserves: the most tasks the learner takes.
    pub max_columns: usize,
    /// Optimizer of the newest column.
    pub optimizer: Optimizer,
    /// Largest batch.
    pub batch_size: usize,
    /// Seed of each column's initialisation (mixed with the column's index).
    pub seed: u64,
    /// Kernel family.
    pub kernels: Kernels,
}

/// Where one layer of one column lies in the column's parameters.
#[derive(Debug, Clone, Copy)]
struct LayerAt {
    start: usize,
    blocks: usize,
    in_width: usize,
    out: usize,
}

impl LayerAt {
    fn block(&self, i: usize) -> usize {
        self.start + i * self.out * self.in_width
    }
    fn bias(&self) -> usize {
        self.block(self.blocks)
    }
    fn end(&self) -> usize {
        self.bias() + self.out
    }
}

impl ColumnsConfig {
    /// Checks the shape and the optimizer.
    pub fn validate(&self) -> Result<(), Error> {
        if self.input == 0 || self.width == 0 || self.classes == 0 {
            return Err(Error::BadConfig(
                "progressive columns need input, width and classes of at least 1",
            ));
        }
        if self.hidden == 0 || self.hidden > MAX_HIDDEN {
            return Err(Error::BadConfig("progressive columns have 1 to 4 hidden layers"));
        }
        if self.max_columns == 0 || self.max_columns > 255 {
            return Err(Error::BadConfig("progressive columns: plan 1 to 255 columns"));
        }
        if self.batch_size == 0 || self.batch_size > crate::learner::config::MAX_BATCH {
            return Err(Error::BadConfig("batch size must be 1 to 65535"));
        }
        self.optimizer.validate()
    }

    fn layer(&self, column: usize, l: usize) -> LayerAt {
        let w = self.width;
        let k = column + 1;
        let hidden_layer = k * w * w + w; // a hidden layer past the first
        if l == 0 {
            return LayerAt {
                start: 0,
                blocks: 1,
                in_width: self.input,
                out: w,
            };
        }
        let start = w * self.input + w + (l - 1) * hidden_layer;
        let out = if l == self.hidden { self.classes } else { w };
        LayerAt {
            start,
            blocks: k,
            in_width: w,
            out,
        }
    }

    /// Parameters of column `column` (0-based), or `None` on overflow.
    pub fn checked_column_params(&self, column: usize) -> Option<usize> {
        let w = self.width;
        let k = column.checked_add(1)?;
        let first = w.checked_mul(self.input)?.checked_add(w)?;
        let hidden = k.checked_mul(w)?.checked_mul(w)?.checked_add(w)?;
        let output = k.checked_mul(w)?.checked_mul(self.classes)?.checked_add(self.classes)?;
        first
            .checked_add(hidden.checked_mul(self.hidden - 1)?)?
            .checked_add(output)
    }

    /// Parameters of column `column` (0-based; for a config its plan has checked).
    pub fn column_params(&self, column: usize) -> usize {
        self.layer(column, self.hidden).end()
    }

    /// Offset of column `column`'s parameters among all columns'.
    fn column_offset(&self, column: usize) -> usize {
        (0..column).map(|c| self.column_params(c)).sum()
    }

    fn act_offset(&self, l: usize, column: usize) -> usize {
        (l * self.max_columns + column) * self.batch_size * self.width
    }

    fn logits_offset(&self) -> usize {
        self.act_offset(self.hidden, 0)
    }
}

/// A progressive-columns learner: every column, the newest one's gradients and optimizer
/// state, and one batch's activations, all inside one arena.
#[derive(Debug)]
pub struct Columns<'a> {
    config: ColumnsConfig,
    plan: Plan,
    arena_used: usize,
    params: &'a mut [f32],
    grads: &'a mut [f32],
    opt_state: &'a mut [f32],
    acts: &'a mut [f32],
    deltas: &'a mut [f32],
    pack: &'a mut [f32],
    columns: usize,
    steps: u32,
}

const SHAPE_BUG: Error = Error::Internal("column shapes disagree with the plan");

impl<'a> Columns<'a> {
    /// Plans `config`, checks the plan against `arena.len()` and carves every component.
    /// No column exists yet: [`Columns::add_column`] makes the first.
    pub fn new(config: &ColumnsConfig, arena: &'a mut [u8]) -> Result<Self, Error> {
        let plan = Plan::columns(config)?;
        plan.check(arena.len())?;
        let mut arena = Arena::new(arena);
        let ColumnParts {
            params,
            grads,
            opt_state,
            acts,
            deltas,
            pack,
        } = layout(config, &mut arena)?;
        Ok(Columns {
            config: *config,
            plan,
            arena_used: arena.used(),
            params,
            grads,
            opt_state,
            acts,
            deltas,
            pack,
            columns: 0,
            steps: 0,
        })
    }

    /// The config.
    pub fn config(&self) -> &ColumnsConfig {
        &self.config
    }

    /// The plan it was carved by.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Bytes of the arena carved.
    pub fn arena_used(&self) -> usize {
        self.arena_used
    }

    /// Columns added so far.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Parameters of every column added so far.
    pub fn column_weights(&self) -> &[f32] {
        &self.params[..self.config.column_offset(self.columns)]
    }

    /// Adds a column for a new task, initialised like PyTorch's `Linear`
    /// (`U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, the fan-in counting lateral inputs) from
    /// the seed and the column's index, and clears the optimizer. Returns its index
    /// (0-based); past the plan's columns, [`Error::ColumnsExhausted`].
    pub fn add_column(&mut self) -> Result<usize, Error> {
        let c = self.config;
        if self.columns >= c.max_columns {
            return Err(Error::ColumnsExhausted {
                task: self.columns + 1,
                max: c.max_columns,
            });
        }
        let k = self.columns;
        let at = c.column_offset(k);
        let mut rng = Rng::new(c.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for l in 0..=c.hidden {
            let lay = c.layer(k, l);
            let bound = 1.0 / math::sqrt((lay.blocks * lay.in_width) as f32);
            for v in &mut self.params[at + lay.start..at + lay.end()] {
                *v = rng.uniform_range(-bound, bound);
            }
        }
        self.opt_state.fill(0.0);
        self.steps = 0;
        self.columns += 1;
        Ok(k)
    }

    fn check(&self, x: &[f32], column: usize) -> Result<usize, Error> {
        if column >= self.columns {
            return Err(Error::NoSuchTask {
                task: column + 1,
                tasks: self.columns,
            });
        }
        check_input(x, self.config.input, self.config.batch_size)
    }

    /// Forward through columns `0..=column`: their hidden outputs, then `column`'s logits.
    fn forward(&mut self, x: &[f32], n: usize, column: usize) -> Result<(), Error> {
        let c = self.config;
        let w = c.width;
        let (acts, tail) = self.acts.split_at_mut(c.logits_offset());
        for l in 0..=c.hidden {
            let last = l == c.hidden;
            for j in 0..=column {
                if last && j != column {
                    continue;
                }
                let lay = c.layer(j, l);
                let p = &self.params[c.column_offset(j)..];
                // Layer l's block j starts after all of layer l - 1 (layer-major layout).
                let (done, out): (&[f32], &mut [f32]) = if last {
                    (&*acts, &mut tail[..n * lay.out])
                } else {
                    let (done, rest) = acts.split_at_mut(c.act_offset(l, j));
                    (done, &mut rest[..n * w])
                };
                for row in out.chunks_exact_mut(lay.out) {
                    row.copy_from_slice(&p[lay.bias()..lay.bias() + lay.out]);
                }
                for i in 0..lay.blocks {
                    let input = if l == 0 {
                        x
                    } else {
                        &done[c.act_offset(l - 1, i)..c.act_offset(l - 1, i) + n * w]
                    };
                    let a = MatRef::row_major(input, n, lay.in_width).ok_or(SHAPE_BUG)?;
                    let b = &p[lay.block(i)..lay.block(i) + lay.out * lay.in_width];
                    let b = MatRef::row_major(b, lay.out, lay.in_width).ok_or(SHAPE_BUG)?.t();
                    if !gemm(c.kernels, a, b, out, true, self.pack) {
                        return Err(SHAPE_BUG);
                    }
                }
                if !last {
                    out.iter_mut().for_each(|v| *v = v.max(0.0));
                }
            }
        }
        Ok(())
    }

    /// One optimizer update of the newest column on a batch (older columns are frozen);
    /// returns the batch's mean loss before the update. Labels and active classes are
    /// checked as [`crate::Learner::train_step`] checks them; a non-finite loss or gradient
    /// is refused and changes nothing.
    pub fn train_step(&mut self, x: &[f32], labels: &[u16], active: Active<'_>) -> Result<f32, Error> {
        let loss = self.compute_gradients(x, labels, active)?;
        let c = self.config;
        let column = self.columns - 1;
        let size = c.column_params(column);
        self.steps = self.steps.saturating_add(1);
        let at = c.column_offset(column);
        let params = &mut self.params[at..at + size];
        let (first, second) = self
            .opt_state
            .split_at_mut(self.opt_state.len() / c.optimizer.state_vectors().max(1));
        let first = if first.is_empty() { first } else { &mut first[..size] };
        let second = if second.is_empty() { second } else { &mut second[..size] };
        optim::update(c.optimizer, params, &self.grads[..size], first, second, self.steps);
        Ok(loss)
    }

    /// The newest column's gradients of the last [`Columns::compute_gradients`] or
    /// training step, in the column's parameter layout.
    pub fn gradients(&self) -> &[f32] {
        let size = self.columns.checked_sub(1).map_or(0, |k| self.config.column_params(k));
        &self.grads[..size]
    }

    /// Every column's parameters, column after column (for loading trained columns).
    pub fn params_mut(&mut self) -> &mut [f32] {
        self.params
    }

    /// Forward and backward over one batch for the newest column: fills
    /// [`Columns::gradients`] and returns the mean loss, changing no parameter.
    pub fn compute_gradients(&mut self, x: &[f32], labels: &[u16], active: Active<'_>) -> Result<f32, Error> {
        let column = self
            .columns
            .checked_sub(1)
            .ok_or(Error::OutOfOrder("add a column before training"))?;
        let n = self.check(x, column)?;
        let c = self.config;
        crate::learner::dims::check_labels(labels, n, &active, c.classes)?;
        self.forward(x, n, column)?;
        let at = c.logits_offset();
        let (acts, logits) = self.acts.split_at(at);
        let half = self.deltas.len() / 2;
        let (cur, next) = self.deltas.split_at_mut(half);
        let loss = network::softmax_xent(
            &logits[..n * c.classes],
            labels,
            &active,
            c.classes,
            &mut cur[..n * c.classes],
        );
        if !loss.is_finite() {
            return Err(Error::Diverged);
        }
        let size = c.column_params(column);
        let grads = &mut self.grads[..size];
        let params = &self.params[c.column_offset(column)..];
        let (mut cur, mut next) = (cur, next);
        for l in (0..=c.hidden).rev() {
            let lay = c.layer(column, l);
            let d = &cur[..n * lay.out];
            let dt = MatRef::row_major(d, n, lay.out).ok_or(SHAPE_BUG)?.t();
            for i in 0..lay.blocks {
                let input = if l == 0 {
                    x
                } else {
                    &acts[c.act_offset(l - 1, i)..c.act_offset(l - 1, i) + n * c.width]
                };
                let inp = MatRef::row_major(input, n, lay.in_width).ok_or(SHAPE_BUG)?;
                let g = &mut grads[lay.block(i)..lay.block(i) + lay.out * lay.in_width];
                if !gemm(c.kernels, dt, inp, g, false, self.pack) {
                    return Err(SHAPE_BUG);
                }
            }
            let gb = &mut grads[lay.bias()..lay.end()];
            gb.fill(0.0);
            for row in d.chunks_exact(lay.out) {
                gb.iter_mut().zip(row).for_each(|(g, &v)| *g += v);
            }
            if l > 0 {
                // Back into this column's own layer below (the lateral inputs are frozen).
                let own = &params[lay.block(column)..lay.block(column) + lay.out * c.width];
                let dm = MatRef::row_major(d, n, lay.out).ok_or(SHAPE_BUG)?;
                let wm = MatRef::row_major(own, lay.out, c.width).ok_or(SHAPE_BUG)?;
                let dx = &mut next[..n * c.width];
                if !gemm(c.kernels, dm, wm, dx, false, self.pack) {
                    return Err(SHAPE_BUG);
                }
                let h = &acts[c.act_offset(l - 1, column)..c.act_offset(l - 1, column) + n * c.width];
                dx.iter_mut()
                    .zip(h)
                    .filter(|(_, &h)| h <= 0.0)
                    .for_each(|(g, _)| *g = 0.0);
                core::mem::swap(&mut cur, &mut next);
            }
        }
        if let Some(index) = grads.iter().position(|g| !g.is_finite()) {
            return Err(Error::NonFiniteGradient { index });
        }
        Ok(loss)
    }

    /// The most likely active class of each sample of `x` by column `column` (0-based;
    /// task-incremental: the task's own column), run `batch_size` samples at a time.
    pub fn predict(&mut self, x: &[f32], column: usize, active: Active<'_>, out: &mut [u16]) -> Result<(), Error> {
        let c = self.config;
        if x.len() != out.len() * c.input {
            return Err(Error::InputShape {
                got: x.len(),
                expected: out.len() * c.input,
            });
        }
        crate::learner::dims::check_active(&active, out.len(), c.classes)?;
        for (chunk, (xs, ys)) in x
            .chunks(c.batch_size * c.input)
            .zip(out.chunks_mut(c.batch_size))
            .enumerate()
        {
            let n = self.check(xs, column)?;
            self.forward(xs, n, column)?;
            let logits = &self.acts[c.logits_offset()..c.logits_offset() + n * c.classes];
            for (i, (z, y)) in logits.chunks_exact(c.classes).zip(ys.iter_mut()).enumerate() {
                let (lo, hi) = active.range(chunk * c.batch_size + i, c.classes);
                *y = best_class(z, lo, hi) as u16;
            }
        }
        Ok(())
    }
}
