//! Budget sweeps: many simulator runs (strategy x budget x seed), each a cell whose report
//! is written to `DIR/cells/` when it finishes, so a sweep killed half-way and started
//! again runs only the cells still missing. Cells run in parallel on worker threads.

mod cells;
mod run;
mod sizing;
mod summary;

pub use cells::{
    cells_dir, cells_text, failed_and_missing, file_safe, finished, outcome, parse_cells, read_cells, write_cell,
    Outcome, CELLS_FILE,
};
pub use run::{collect, run_cells, Progress};
pub use sizing::{fit_generator, flash_need, FlashNeed, CONFIG_BYTES, HEAD_FLOOR, MAX_RANK, SECTOR, VAE_WIDTHS};
pub use summary::{accuracy, did_not_fit, parse_label, summary, SummaryRow};

/// One run of a sweep: a point of the grid boards x scenarios x settings x strategies x
/// budgets x seeds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cell {
    /// Board profile whose rules the cell runs under (`--board`), or none: the protocol's
    /// default board, without the flash rule.
    pub board: Option<String>,
    /// Scenario, as `--scenario` takes it (`split`, `permuted`, `rotated`).
    pub scenario: String,
    /// Setting, as `--setting` takes it (`task-il`, `domain-il`, `class-il`).
    pub setting: String,
    /// Strategy, as `--strategy` takes it.
    pub strategy: String,
    /// Arena bytes.
    pub budget: usize,
    /// Seed.
    pub seed: u64,
}

/// The axes of a sweep's grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    /// Each board (none: the protocol's default board, without its rules) with the budgets
    /// swept on it.
    pub boards: Vec<(Option<String>, Vec<usize>)>,
    /// Scenarios.
    pub scenarios: Vec<String>,
    /// Settings.
    pub settings: Vec<String>,
    /// Strategy labels.
    pub strategies: Vec<String>,
    /// Seeds `1..=seeds`.
    pub seeds: u64,
}

impl Grid {
    /// Every cell, in a stable order: boards outermost, then scenarios, settings,
    /// strategies, budgets and seeds.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for (board, budgets) in &self.boards {
            for scenario in &self.scenarios {
                for setting in &self.settings {
                    for strategy in &self.strategies {
                        for &budget in budgets {
                            for seed in 1..=self.seeds {
                                cells.push(Cell {
                                    board: board.clone(),
                                    scenario: scenario.clone(),
                                    setting: setting.clone(),
                                    strategy: strategy.clone(),
                                    budget,
                                    seed,
                                });
                            }
                        }
                    }
                }
            }
        }
        cells
    }
}

impl Cell {
    /// The cell's report file name: `[BOARD-]SCENARIO-SETTING-STRATEGY-BUDGET-SEED.json`.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}-{}-{}.json",
            self.group().key(),
            file_safe(&self.strategy),
            self.budget,
            self.seed
        )
    }

    /// The group the report puts the cell in: board, scenario and setting.
    pub fn group(&self) -> Group {
        Group {
            board: self.board.clone(),
            scenario: self.scenario.clone(),
            setting: self.setting.clone(),
        }
    }
}

/// Cells that share a board, scenario and setting: one table and one set of plots in the
/// report.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Group {
    /// Board, when the sweep names one.
    pub board: Option<String>,
    /// Scenario.
    pub scenario: String,
    /// Setting.
    pub setting: String,
}

impl Group {
    /// `board, scenario, setting` for headings.
    pub fn title(&self) -> String {
        match &self.board {
            Some(b) => format!("{b}, {} {}", self.scenario, self.setting),
            None => format!("{} {}", self.scenario, self.setting),
        }
    }

    /// A file-name-safe key (`[board-]scenario-setting`) for plot names and page anchors.
    pub fn key(&self) -> String {
        let board = self.board.as_deref().map_or_else(String::new, |b| file_safe(b) + "-");
        format!("{board}{}-{}", file_safe(&self.scenario), file_safe(&self.setting))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::signed;
    use crate::host::board::Board;
    use crate::host::simulate::{
        self, GeneratorChoice, Length, Options, PackNetOptions, PenaltyOptions, Protocol, ReplayOptions, Strategy,
    };
    use crate::learner::Plan;
    use crate::{FisherLabels, Kernels, Optimizer, Storage};

    fn edge(strategy: &str, generator: GeneratorChoice, budget: usize) -> Options {
        Options {
            protocol: Protocol::Edge,
            strategy: Strategy::parse(strategy).unwrap(),
            board: Board::load("netduinoplus2").unwrap(),
            budget,
            length: Length::Iters(10),
            batch: 32,
            optimizer: Optimizer::adam(1e-3),
            hidden: None,
            kernels: Kernels::Reference,
            seed: 1,
            progress: false,
            data: String::new(),
            backbone: None,
            penalty: PenaltyOptions {
                lambda: 1.0,
                gamma: 1.0,
                xi: 0.1,
                storage: Storage::F32,
                fisher: FisherLabels::True,
                samples: 10,
            },
            reset_optimizer: false,
            observe: crate::host::simulate::Observe::AfterTask,
            packnet: PackNetOptions {
                prune_ratio: 0.75,
                retrain_iters: 2,
            },
            column_width: None,
            replay: ReplayOptions {
                generator,
                slots: Some(2),
                ..ReplayOptions::default()
            },
        }
    }

    fn head(o: &Options) -> usize {
        simulate::learner_config(o, 256, 10, 5).unwrap().dims.as_slice()[1]
    }

    fn fits(o: &Options) -> bool {
        let c = simulate::learner_config(o, 256, 10, 5).unwrap();
        Plan::new(&c).unwrap().total() <= o.budget
    }

    #[test]
    fn summary_rows_survive_json_and_say_what_they_hold() {
        let row = SummaryRow {
            group: Group {
                board: Some("rp-pico".into()),
                scenario: "split".into(),
                setting: "class-il".into(),
            },
            strategy: "si".into(),
            budget: 4096,
            accuracy: Some((50.0, 1.5)),
            range: Some((48.0, 52.0)),
            ran: 2,
            unfit: 0,
            missing: 3,
            failed: 1,
        };
        assert_eq!(SummaryRow::from_json(&row.to_json()), row);
        assert_eq!(row.text(), "50.00 ± 1.50 (1 failed, 2 missing)");
        let one = SummaryRow {
            ran: 1,
            missing: 0,
            failed: 0,
            ..row.clone()
        };
        assert_eq!(one.text(), "50.00 (n=1)");
        let unfit = SummaryRow {
            accuracy: None,
            range: None,
            ran: 0,
            unfit: 3,
            missing: 0,
            failed: 0,
            ..row.clone()
        };
        assert_eq!(unfit.text(), "does not fit");
        let failed = SummaryRow {
            accuracy: None,
            range: None,
            ran: 0,
            missing: 2,
            failed: 2,
            ..row
        };
        assert_eq!(failed.text(), "2 failed");
    }

    #[test]
    fn labels_name_a_generator_only_for_strategies_that_replay() {
        let (s, g) = parse_label("replay:buffer").unwrap();
        assert!(s.replays() && g == Some(GeneratorChoice::Buffer));
        assert_eq!(parse_label("si+replay").unwrap().1, None);
        assert!(parse_label("si:buffer").unwrap_err().to_string().contains("replays"));
        assert!(parse_label("replay:tape")
            .unwrap_err()
            .to_string()
            .contains("gaussian, buffer or vae"));
        assert!(parse_label("nope").is_err());
    }

    #[test]
    fn the_generator_takes_the_largest_size_that_leaves_the_head_its_floor() {
        for budget in [64 << 10, 96 << 10, 128 << 10] {
            let mut o = edge("replay", GeneratorChoice::Gaussian, budget);
            fit_generator(&mut o, 256, 10, 5);
            assert!(fits(&o) && head(&o) >= HEAD_FLOOR, "{budget}: rank {}", o.replay.rank);
            if o.replay.rank < MAX_RANK {
                // One rank more would starve the head or not fit.
                let mut more = o.clone();
                more.replay.rank += 1;
                assert!(!fits(&more) || head(&more) < HEAD_FLOOR, "{budget}");
            }
        }
        // More budget, no smaller generator.
        let ranks: Vec<usize> = [64 << 10, 96 << 10, 128 << 10]
            .iter()
            .map(|&b| {
                let mut o = edge("replay", GeneratorChoice::Gaussian, b);
                fit_generator(&mut o, 256, 10, 5);
                o.replay.rank
            })
            .collect();
        assert!(
            ranks.windows(2).all(|w| w[0] <= w[1]) && ranks[2] > ranks[0],
            "{ranks:?}"
        );
    }

    #[test]
    fn without_room_for_the_floor_the_smallest_generator_is_taken() {
        let mut o = edge("replay", GeneratorChoice::Gaussian, 32 << 10);
        o.replay.rank = 7;
        fit_generator(&mut o, 256, 10, 5);
        assert_eq!(o.replay.rank, 0);
        let mut v = edge("replay", GeneratorChoice::Vae, 20 << 10);
        fit_generator(&mut v, 256, 10, 5);
        assert_eq!(v.replay.vae_hidden, Some(VAE_WIDTHS[VAE_WIDTHS.len() - 1]));
    }

    #[test]
    fn strategies_without_a_generator_are_left_alone() {
        let mut o = edge("si", GeneratorChoice::Gaussian, 64 << 10);
        let before = o.clone();
        fit_generator(&mut o, 256, 10, 5);
        assert_eq!(o.replay, before.replay);
    }

    #[test]
    fn flash_need_adds_firmware_image_and_two_checkpoint_slots() {
        let board = Board::load("netduinoplus2").unwrap();
        let n = flash_need(&board, 1000, 5000, 100_000);
        let base = board.firmware_base_bytes.unwrap() as usize;
        assert_eq!(n.firmware_bytes, Some(base));
        assert_eq!(
            n.image_bytes,
            signed::HEADER + CONFIG_BYTES + 4000 + 100_000 + signed::SIGNATURE
        );
        assert_eq!(n.checkpoint_bytes, 2 * 8192);
        assert_eq!(n.total_bytes, base + n.image_bytes + n.checkpoint_bytes);
        assert!(n.fits);
        let big = flash_need(&board, 1000, 5000, 1 << 20);
        assert!(!big.fits && big.total_bytes > big.flash_bytes);
        // A board without measured firmware counts the image and checkpoints only.
        let pi = Board::load("raspberry-pi-4").unwrap();
        let p = flash_need(&pi, 1000, 5000, 0);
        assert_eq!(
            (p.firmware_bytes, p.total_bytes),
            (None, p.image_bytes + p.checkpoint_bytes)
        );
    }
}
