//! `edgecl`: plan a learner for a board, and simulate continual learning under its budget.

mod cli;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "edgecl",
    version,
    about = "Continual learning on small devices inside one fixed byte arena"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a continual-learning scenario on the core under a board's budget and report
    /// the accuracy matrix, forgetting and memory; without --strategy, fine-tuning and
    /// the board's recommended defence on the same stream, side by side.
    Simulate(Box<cli::simulate::SimulateArgs>),
    /// Print a learner's bytes per component against a board's budget (exit status 1
    /// when it does not fit).
    Plan(Box<cli::plan::PlanArgs>),
    /// List the shipped board profiles.
    Boards,
    /// Write the firmware's flash images: the int8 backbone and the stream (digits or windows).
    #[cfg(feature = "onnx")]
    DeviceData(cli::device_data::DeviceDataArgs),
    /// Run a grid of boards x scenarios x settings x strategies x budgets x seeds, each cell
    /// planned to the largest learner that fits its budget (the widest head; a generator
    /// takes the largest size that leaves the head 8 hidden units); reports land in
    /// OUT/cells/ (a killed sweep resumes where it stopped), all cells and the summary in
    /// OUT/sweep.json, plots in OUT/plots/, the page in OUT/report.html. With --slurm the
    /// cells run as a Slurm job array and a job after it draws the report; --resubmit DIR
    /// sends the missing and failed cells again; --report DIR draws the report from the
    /// cells there. A --lambda list is not swept (its first value is taken).
    Sweep(Box<cli::sweep::SweepArgs>),
    /// Run one cell of a sweep's folder (its line INDEX of DIR/cells.txt, from 0) and
    /// write its report into DIR/cells/; what each task of a Slurm job array runs. A cell
    /// with a report is not run again; exit status 1 when the run failed.
    SweepCell(cli::sweep::SweepCellArgs),
    /// Make an Ed25519 key pair for signing device images: KEY (the secret seed, tagged
    /// `edgecl-secret-key`, readable by its owner only) and KEY.pub (the public key,
    /// tagged `edgecl-public-key`, the firmware compiles in).
    Keygen(cli::keygen::KeygenArgs),
    /// Write a signed device image for a board: the learner config, the head's initial
    /// weights and, for microcontrollers, the int8 backbone.
    #[cfg(feature = "onnx")]
    Export(cli::export::ExportArgs),
    /// Train a backbone on the host (burn, CPU) and write it as a model folder:
    /// backbone.onnx, head.json and MODEL.md.
    #[cfg(feature = "train")]
    Train(cli::train::TrainArgs),
    /// Deploy on a Linux board: take samples as they come (JSON lines on standard input or
    /// from a file, or an IDX folder as the simulator's stream), predict each through
    /// tract and the head, learn from the labelled ones in the board's arena, and keep
    /// what was learned in a state folder (checkpoints every N updates, at task ends and on
    /// SIGTERM/SIGINT; a restart goes on where it stopped).
    #[cfg(feature = "onnx")]
    Run(cli::run::RunArgs),
}

fn main() {
    let matches = Cli::command()
        .try_get_matches()
        .unwrap_or_else(|e| cli::strategy::exit(e));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Simulate(a) => cli::simulate::simulate(*a, cli::simulate::strategy_given(&matches)).map(|()| true),
        Command::Plan(a) => cli::plan::plan(*a),
        #[cfg(feature = "train")]
        Command::Train(a) => cli::train::train(a).map(|()| true),
        #[cfg(feature = "onnx")]
        Command::DeviceData(a) => cli::device_data::device_data(a).map(|()| true),
        Command::Sweep(a) => cli::sweep::sweep(*a).map(|()| true),
        Command::SweepCell(a) => cli::sweep::sweep_cell(a),
        Command::Keygen(a) => cli::keygen::keygen(&a.out).map(|()| true),
        #[cfg(feature = "onnx")]
        Command::Export(a) => cli::export::export(a).map(|()| true),
        #[cfg(feature = "onnx")]
        Command::Run(a) => match cli::run::run(a) {
            Ok(0) => Ok(true),
            Ok(code) => std::process::exit(code),
            Err(e) => Err(e),
        },
        Command::Boards => cli::boards::boards().map(|()| true),
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("edgecl: {e:#}");
            std::process::exit(1);
        }
    }
}
