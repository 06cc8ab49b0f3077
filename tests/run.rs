#![cfg(feature = "onnx")]
//! `edgecl run`: the simulator's twin over an IDX stream, kill -9 at seeded points, a
//! signal, and every bad input (its message, the exit status, the learner unchanged).

use edgecl::host::board::Board;
use edgecl::host::device::{key_file_text, keygen, KeyKind};
use edgecl::host::runtime::{linux_image, state};
use edgecl::learner::rng::Rng;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BACKBONE: &str = "models/fashion-cnn/backbone.onnx";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn edgecl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgecl"));
    c.current_dir(root());
    c
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgecl-run-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The first `train` and `test` images of the shipped MNIST, as an IDX folder.
fn mini_mnist(dir: &Path, train: u32, test: u32) -> PathBuf {
    let out = dir.join("mnist");
    std::fs::create_dir_all(&out).unwrap();
    for (part, n) in [("train", train), ("t10k", test)] {
        let read = |name: &str| {
            let f = std::fs::File::open(root().join("data/mnist").join(name)).unwrap();
            let mut v = Vec::new();
            flate2::read::GzDecoder::new(f).read_to_end(&mut v).unwrap();
            v
        };
        let images = read(&format!("{part}-images-idx3-ubyte.gz"));
        let labels = read(&format!("{part}-labels-idx1-ubyte.gz"));
        let mut im = vec![0, 0, 8, 3];
        for d in [n, 28, 28] {
            im.extend(d.to_be_bytes());
        }
        im.extend(&images[16..16 + 784 * n as usize]);
        let mut lb = vec![0, 0, 8, 1];
        lb.extend(n.to_be_bytes());
        lb.extend(&labels[8..8 + n as usize]);
        std::fs::write(out.join(format!("{part}-images-idx3-ubyte")), im).unwrap();
        std::fs::write(out.join(format!("{part}-labels-idx1-ubyte")), lb).unwrap();
    }
    out
}

/// A key pair in `dir` and a raspberry-pi-4 image of `config` signed with it.
struct Deploy {
    image: PathBuf,
    key: PathBuf,
    backbone: String,
}

fn deploy(dir: &Path, config: &str) -> Deploy {
    deploy_with(dir, config, BACKBONE)
}

fn deploy_with(dir: &Path, config: &str, backbone: &str) -> Deploy {
    std::fs::create_dir_all(dir).unwrap();
    let (secret, public) = keygen();
    let key = dir.join("owner.key.pub");
    std::fs::write(&key, key_file_text(KeyKind::Public, &public)).unwrap();
    let image = dir.join("pi.img");
    let onnx = std::fs::read(root().join(backbone)).unwrap();
    let board = Board::load("raspberry-pi-4").unwrap();
    std::fs::write(&image, linux_image(&board, config, &onnx, backbone, &secret).unwrap()).unwrap();
    Deploy {
        image,
        key,
        backbone: backbone.to_string(),
    }
}

impl Deploy {
    fn run(&self, state: &Path, input: &Path, out: &Path, extra: &[&str]) -> Output {
        self.command(state, input, out, extra).output().unwrap()
    }

    fn command(&self, state: &Path, input: &Path, out: &Path, extra: &[&str]) -> Command {
        let mut c = edgecl();
        c.args(["run", "--quiet", "--backbone", &self.backbone]);
        c.arg("--image").arg(&self.image).arg("--key").arg(&self.key);
        c.arg("--state")
            .arg(state)
            .arg("--input")
            .arg(input)
            .arg("--output")
            .arg(out);
        c.args(extra);
        c
    }
}

/// The last summary line of an output file.
fn summary(out: &Path) -> Value {
    let text = std::fs::read_to_string(out).unwrap();
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"summary\""))
        .unwrap_or_else(|| panic!("no summary in {}", out.display()));
    serde_json::from_str::<Value>(line).unwrap()["summary"].clone()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_over_an_idx_stream_equals_simulate_bit_for_bit() {
    let dir = temp_dir("twin");
    let data = mini_mnist(&dir, 3000, 600);
    for strategy in ["naive", "si", "replay", "packnet", "packnet+replay"] {
        let d = deploy(&dir, &format!("strategy = \"{strategy}\"\nbudget = \"96k\"\n"));
        let name = strategy.replace('+', "-");
        let (state, out) = (dir.join(format!("state-{name}")), dir.join(format!("{name}.jsonl")));
        let o = d.run(&state, &data, &out, &["--iters", "40"]);
        assert!(o.status.success(), "{strategy}: {}", stderr(&o));
        let run = summary(&out);
        let json = dir.join(format!("{name}.json"));
        let o = edgecl()
            .args([
                "simulate",
                "-q",
                "--board",
                "raspberry-pi-4",
                "--budget",
                "96k",
                "--iters",
                "40",
            ])
            .args([
                "--observe",
                "online",
                "--retrain-iters",
                "0",
                "--strategy",
                strategy,
                "--data",
            ])
            .arg(&data)
            .arg("--json")
            .arg(&json)
            .output()
            .unwrap();
        assert!(o.status.success(), "{strategy}: {}", stderr(&o));
        let sim: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(run["accuracy_matrix"], sim["accuracy_matrix"], "{strategy}");
        assert_eq!(run["untrained"], sim["random_accuracy"], "{strategy}");
        assert_eq!(run["learner"], sim["learner"]["dims"], "{strategy}");
        assert_eq!(run["tasks"], 5);
        // The stream's rows per update: every update of the simulator made, no more.
        assert_eq!(run["updates"], 200, "{strategy}");
        let avg = run["avg_accuracy"].as_f64().unwrap();
        assert!(avg > 10.0, "{strategy}: {avg}");
    }
}

/// The lines of an output file that are predictions (`{"seq", "class", "scores"}`).
fn predictions(out: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out).unwrap();
    text.lines()
        .filter(|l| l.starts_with("{\"seq\""))
        .map(str::to_string)
        .collect()
}

#[test]
fn watch_windows_as_json_lines_give_the_predictions_of_the_idx_stream_that_simulate_equals() {
    use edgecl::host::runtime::input::{IdxSpec, IdxStream, Item};
    let dir = temp_dir("windows");
    let watch = root().join("data/seglearn-watch");
    let d = deploy_with(
        &dir,
        "strategy = \"si\"\nbudget = \"96k\"\nbatch = 8\nclasses = 7\n",
        "models/watch03-conv1d/backbone.onnx",
    );
    // The IDX folder played as the simulator's stream equals simulate.
    let idx_out = dir.join("idx.jsonl");
    let o = d.run(&dir.join("state-idx"), &watch, &idx_out, &["--iters", "20"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = summary(&idx_out);
    let json = dir.join("sim.json");
    let o = edgecl()
        .args([
            "simulate",
            "-q",
            "--board",
            "raspberry-pi-4",
            "--budget",
            "96k",
            "--iters",
            "20",
            "--batch",
            "8",
        ])
        .args(["--observe", "online", "--strategy", "si", "--data"])
        .arg(&watch)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let sim: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(sim["backbone"], "watch03-conv1d");
    assert_eq!(run["accuracy_matrix"], sim["accuracy_matrix"]);
    assert_eq!(run["tasks"], 4);
    // The same stream as JSON lines, each window as 100 rows of 6 channels.
    let spec = IdxSpec {
        tasks: None,
        classes_per_task: 2,
        iters: 20,
        seed: 1,
        batch: 8,
        ratio: None,
    };
    let mut lines = Vec::new();
    for item in IdxStream::open(&watch, &spec).unwrap() {
        lines.push(match item {
            Item::Sample { x, label } => {
                let rows: Vec<String> = x
                    .chunks(6)
                    .map(|r| format!("[{}]", r.iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(",")))
                    .collect();
                assert_eq!(rows.len(), 100);
                format!("{{\"x\": [{}], \"label\": {}}}", rows.join(","), label.unwrap())
            }
            Item::TaskStart(c) => format!(
                "{{\"event\": \"task-start\", \"classes\": [{}]}}",
                (c.start..c.end).map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
            ),
            Item::TaskEnd => "{\"event\": \"task-end\"}".to_string(),
            Item::Bad(why) => panic!("{why}"),
        });
    }
    let input = dir.join("windows.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let json_out = dir.join("json.jsonl");
    let o = d.run(&dir.join("state-json"), &input, &json_out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (predictions(&idx_out), predictions(&json_out));
    assert_eq!(a.len(), 4 * 20 * 8, "a prediction per sample the stream fed");
    assert_eq!(a, b, "the windows as JSON lines are the IDX stream, bit for bit");
    assert_eq!(summary(&json_out)["head_fnv1a"], run["head_fnv1a"]);
    // A window of 50 steps is refused, the learner unchanged.
    let mut short = lines.clone();
    let half: Vec<String> = (0..50).map(|_| "[0,0,0,0,0,0]".to_string()).collect();
    short.insert(3, format!("{{\"x\": [{}], \"label\": 1}}", half.join(",")));
    let input = dir.join("short.jsonl");
    std::fs::write(&input, short.join("\n") + "\n").unwrap();
    let short_out = dir.join("short.out");
    let o = d.run(&dir.join("state-short"), &input, &short_out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("line 4: a sample of 300 values; the backbone takes 600"),
        "{}",
        stderr(&o)
    );
    assert_eq!(summary(&short_out)["head_fnv1a"], run["head_fnv1a"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run killed with SIGKILL at 20 seeded moments and started again each time ends as
/// the run that was never killed, and every slot file left behind is whole.
#[test]
fn killed_at_twenty_seeded_points_it_resumes_to_the_uninterrupted_result() {
    let dir = temp_dir("kill");
    let data = mini_mnist(&dir, 2000, 300);
    let d = deploy(&dir, "strategy = \"replay\"\nbudget = \"96k\"\n");
    let args = ["--iters", "60", "--checkpoint-every", "3"];
    let (state, out) = (dir.join("state-once"), dir.join("once.jsonl"));
    let o = d.run(&state, &data, &out, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let once = summary(&out);

    let (state, out) = (dir.join("state-killed"), dir.join("killed.jsonl"));
    let mut rng = Rng::new(20);
    let mut resumed = 0;
    for kill in 0..20 {
        let mut child = d
            .command(&state, &data, &out, &args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(250 + u64::from(rng.below(900))));
        let _ = child.kill();
        let o = child.wait_with_output().unwrap();
        if stderr(&o).contains("resumed from") {
            resumed += 1;
        }
        // Whatever the moment, every slot file present is a whole, valid state.
        for name in state::SLOTS {
            let p = state.join(name);
            if let Ok(bytes) = std::fs::read(&p) {
                state::decode(&bytes).unwrap_or_else(|e| panic!("after kill {kill}: {}: {e:#}", p.display()));
            }
        }
    }
    let o = d.run(&state, &data, &out, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resumed from"), "{}", stderr(&o));
    assert!(resumed >= 10, "only {resumed} of 20 restarts found a checkpoint");
    let killed = summary(&out);
    for field in [
        "accuracy_matrix",
        "head_fnv1a",
        "state_fnv1a",
        "updates",
        "labelled",
        "samples",
        "tasks",
    ] {
        assert_eq!(killed[field], once[field], "{field}");
    }
}

/// `n` labelled samples of the mini MNIST as JSON lines (classes 0 and 1).
fn sample_lines(data: &Path, n: usize) -> Vec<String> {
    let train = edgecl::host::idx::load_split(data, edgecl::host::idx::Split::Train, None).unwrap();
    (0..train.len())
        .filter(|&i| train.y[i] < 2)
        .take(n)
        .map(|i| {
            let x: Vec<String> = train.x.row(i).iter().map(|v| format!("{v}")).collect();
            format!("{{\"x\": [{}], \"label\": {}}}", x.join(","), train.y[i])
        })
        .collect()
}

struct Lines {
    dir: PathBuf,
    deploy: Deploy,
    good: Vec<String>,
}

/// A deployment of SI with batch 8 and 40 good lines; the clean run's summary.
fn lines(name: &str) -> (Lines, Value) {
    let dir = temp_dir(name);
    let data = mini_mnist(&dir, 400, 10);
    let deploy = deploy(&dir, "strategy = \"si\"\nbudget = \"96k\"\nbatch = 8\n");
    let good = sample_lines(&data, 40);
    let l = Lines { dir, deploy, good };
    let (o, s) = l.run("clean", &l.good, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    (l, s)
}

impl Lines {
    /// Runs over `lines` in a fresh state folder; the output and the summary.
    fn run(&self, name: &str, lines: &[String], extra: &[&str]) -> (Output, Value) {
        let input = self.dir.join(format!("{name}.jsonl"));
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();
        let out = self.dir.join(format!("{name}.out"));
        let o = self
            .deploy
            .run(&self.dir.join(format!("state-{name}")), &input, &out, extra);
        let s = if out.exists() { summary(&out) } else { Value::Null };
        (o, s)
    }

    /// The good lines with `bad` as line 21: skipped with `message` on line 21, the
    /// learner exactly the clean run's; with --strict, status 2.
    fn refuses(&self, clean: &Value, bad: &str, message: &str) {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut lines = self.good.clone();
        lines.insert(20, bad.to_string());
        let (o, s) = self.run(&format!("bad{n}"), &lines, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("line 21: ") && err.contains(message), "{err}");
        assert!(err.contains("skipped, the learner is unchanged"), "{err}");
        assert_eq!(s["skipped"], 1);
        for field in ["state_fnv1a", "head_fnv1a", "updates", "labelled"] {
            assert_eq!(s[field], clean[field], "{field}");
        }
        let (o, s) = self.run(&format!("strict{n}"), &lines, &["--strict"]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("--strict: stopped at line 21"), "{}", stderr(&o));
        assert_eq!(
            (s["stopped"].as_str(), s["position"].as_u64()),
            (Some("bad-input"), Some(21))
        );
    }
}

#[test]
fn a_malformed_json_line_is_skipped_with_its_line_number() {
    let (l, clean) = lines("malformed");
    assert_eq!(
        (clean["updates"].as_u64(), clean["skipped"].as_u64()),
        (Some(5), Some(0))
    );
    l.refuses(&clean, "{\"x\": [0.1, 0.2", "not a JSON event");
}

#[test]
fn a_sample_of_the_wrong_width_is_skipped() {
    let (l, clean) = lines("width");
    l.refuses(
        &clean,
        "{\"x\": [0.5, 0.5, 0.5], \"label\": 1}",
        "a sample of 3 values; the backbone takes 784",
    );
}

#[test]
fn nan_and_infinite_values_are_skipped() {
    let (l, clean) = lines("nan");
    let nan = l.good[3].replacen("[0,", "[NaN,", 1);
    assert_ne!(nan, l.good[3]);
    l.refuses(&clean, &nan, "value 0 of the sample is NaN");
    let inf = l.good[3].replacen("[0,", "[1e39,", 1);
    l.refuses(&clean, &inf, "value 0 of the sample is inf");
}

#[test]
fn a_label_out_of_range_is_skipped() {
    let (l, clean) = lines("label");
    let bad = l.good[3]
        .replace("\"label\": 1", "\"label\": 12")
        .replace("\"label\": 0", "\"label\": 12");
    l.refuses(&clean, &bad, "label 12 is out of range: the head has classes 0 to 9");
    let negative = bad.replace("\"label\": 12", "\"label\": -1");
    l.refuses(&clean, &negative, "label -1 is out of range");
}

#[test]
fn a_tampered_image_or_backbone_is_refused_before_anything_runs() {
    let (l, _) = lines("tamper");
    let good_image = std::fs::read(&l.deploy.image).unwrap();
    // A byte of the config flipped: the CRC or the signature fails.
    let mut bad = good_image.clone();
    bad[50] ^= 1;
    std::fs::write(&l.deploy.image, &bad).unwrap();
    let (o, _) = l.run("tampered-image", &l.good, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("pi.img: device image"), "{}", stderr(&o));
    assert!(!l.dir.join("state-tampered-image").join(state::SLOTS[0]).exists());
    // Re-signed by another key: the signature fails.
    let (other, _) = keygen();
    let onnx = std::fs::read(root().join(BACKBONE)).unwrap();
    let board = Board::load("raspberry-pi-4").unwrap();
    let foreign = linux_image(
        &board,
        "strategy = \"si\"\nbudget = \"96k\"\nbatch = 8\n",
        &onnx,
        BACKBONE,
        &other,
    )
    .unwrap();
    std::fs::write(&l.deploy.image, foreign).unwrap();
    let (o, _) = l.run("foreign", &l.good, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("the signature does not verify"), "{}", stderr(&o));
    std::fs::write(&l.deploy.image, &good_image).unwrap();
    // The backbone with one weight changed: not the one the image was made for.
    let mut onnx = onnx;
    let n = onnx.len();
    onnx[n - 100] ^= 1;
    let tampered = l.dir.join("tampered.onnx");
    std::fs::write(&tampered, &onnx).unwrap();
    let input = l.dir.join("tamper.jsonl");
    std::fs::write(&input, l.good.join("\n")).unwrap();
    let o = edgecl()
        .args(["run", "--quiet", "--input"])
        .arg(&input)
        .arg("--image")
        .arg(&l.deploy.image)
        .arg("--key")
        .arg(&l.deploy.key)
        .arg("--state")
        .arg(l.dir.join("state-onnx"))
        .arg("--backbone")
        .arg(&tampered)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not the backbone this image was made for"),
        "{}",
        stderr(&o)
    );
    assert!(!l.dir.join("state-onnx").join(state::SLOTS[0]).exists());
}

#[test]
fn a_state_folder_of_another_image_is_refused_and_left_as_it_is() {
    let (l, _) = lines("other-image");
    let state = l.dir.join("state-clean");
    let before: Vec<Vec<u8>> = state::SLOTS
        .iter()
        .filter_map(|s| std::fs::read(state.join(s)).ok())
        .collect();
    assert!(!before.is_empty());
    let other = deploy(
        &l.dir.join("other"),
        "strategy = \"naive\"\nbudget = \"96k\"\nbatch = 8\n",
    );
    let input = l.dir.join("clean.jsonl");
    let o = other.run(&state, &input, &l.dir.join("o.out"), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("was written under another device image"),
        "{}",
        stderr(&o)
    );
    let after: Vec<Vec<u8>> = state::SLOTS
        .iter()
        .filter_map(|s| std::fs::read(state.join(s)).ok())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn a_state_folder_that_cannot_be_written_fails_at_the_checkpoint_and_keeps_the_last_one() {
    let (l, clean) = lines("unwritable");
    // Run 1 leaves a checkpoint in slot 0; make its next write (slot 1) impossible.
    let (o, first) = l.run("unwritable", &l.good[..16], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let state = l.dir.join("state-unwritable");
    std::fs::create_dir_all(state.join("state-1.bin.tmp")).unwrap();
    let kept = std::fs::read(state.join(state::SLOTS[0])).unwrap();
    let input = l.dir.join("unwritable.jsonl");
    std::fs::write(&input, l.good.join("\n")).unwrap();
    let o = l
        .deploy
        .run(&state, &input, &l.dir.join("u.out"), &["--checkpoint-every", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("writing the checkpoint"), "{}", stderr(&o));
    assert_eq!(std::fs::read(state.join(state::SLOTS[0])).unwrap(), kept);
    // Writable again: it goes on from the kept checkpoint to the clean run's learner.
    std::fs::remove_dir(state.join("state-1.bin.tmp")).unwrap();
    let o = l.deploy.run(&state, &input, &l.dir.join("u.out"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = summary(&l.dir.join("u.out"));
    assert_eq!(first["position"], 16);
    for field in ["state_fnv1a", "updates", "labelled"] {
        assert_eq!(s[field], clean[field], "{field}");
    }
}

#[test]
fn sigterm_checkpoints_the_learner_before_the_waiting_rows() {
    let (l, _) = lines("sigterm");
    let state = l.dir.join("state-term");
    let out = l.dir.join("term.out");
    let mut child = l
        .deploy
        .command(&state, Path::new("-"), &out, &["--checkpoint-every", "0"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // 20 samples: two updates of 8, four rows waiting.
    for line in &l.good[..20] {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let k = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success());
    let o = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("stopped by a signal"), "{}", stderr(&o));
    let s = summary(&out);
    assert_eq!(
        (s["stopped"].as_str(), s["updates"].as_u64()),
        (Some("signal"), Some(2))
    );
    let newest = state::SLOTS
        .iter()
        .filter_map(|n| std::fs::read(state.join(n)).ok())
        .map(|b| state::decode(&b).unwrap())
        .max_by_key(|(seq, ..)| *seq)
        .unwrap();
    // The checkpoint is the learner after 16 rows, and the input position of row 17.
    assert_eq!((newest.1.position, newest.1.labelled), (16, 16));
}

#[test]
fn task_free_runs_end_a_task_every_n_labelled_samples_or_at_a_new_class() {
    let dir = temp_dir("task-free");
    let data = mini_mnist(&dir, 400, 10);
    let good = sample_lines(&data, 40);
    let input = dir.join("in.jsonl");
    std::fs::write(&input, good.join("\n")).unwrap();
    let every = deploy(
        &dir,
        "strategy = \"replay\"\nbudget = \"96k\"\nbatch = 8\nend_task_every = 10\n",
    );
    let o = every.run(&dir.join("s1"), &input, &dir.join("every.out"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Tasks end at samples 10, 20, 30 (before the next sample), and not at the end.
    assert_eq!(summary(&dir.join("every.out"))["tasks"], 3);
    let d2 = temp_dir("task-free-class");
    let new_class = deploy(
        &d2,
        "strategy = \"replay\"\nbudget = \"96k\"\nbatch = 8\nend_task_on_new_class = true\n",
    );
    let o = new_class.run(&d2.join("s2"), &input, &d2.join("class.out"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The stream's classes: 0 and 1 interleaved, so class 1's first sample ends task 1.
    assert_eq!(summary(&d2.join("class.out"))["tasks"], 1);
}

/// The aarch64 build (`EDGECL_AARCH64_BIN`, which `.ci/run` cross-builds) under
/// `qemu-aarch64` predicts a 200-sample stream as this build does: the same class for
/// every sample, the scores within 1e-5, the same head at the end.
#[test]
fn the_aarch64_build_under_qemu_predicts_as_this_one() {
    let Some(bin) = std::env::var_os("EDGECL_AARCH64_BIN") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must cross-build edgecl for aarch64 and set EDGECL_AARCH64_BIN (see .ci/run)"
        );
        eprintln!("skipped: EDGECL_AARCH64_BIN is not set (.ci/run cross-builds edgecl for aarch64 and sets it)");
        return;
    };
    let dir = temp_dir("aarch64");
    let data = mini_mnist(&dir, 1000, 10);
    let train = edgecl::host::idx::load_split(&data, edgecl::host::idx::Split::Train, None).unwrap();
    // 200 samples: 150 labelled of classes 0-3 in two tasks, 50 unlabelled.
    let mut lines = Vec::new();
    for classes in [[0u16, 1], [2, 3]] {
        lines.push(format!(
            "{{\"event\": \"task-start\", \"classes\": [{}, {}]}}",
            classes[0], classes[1]
        ));
        let rows = (0..train.len()).filter(|&i| classes.contains(&train.y[i])).take(100);
        for (n, i) in rows.enumerate() {
            let x: Vec<String> = train.x.row(i).iter().map(|v| format!("{v}")).collect();
            let label = if n % 4 == 3 {
                String::new()
            } else {
                format!(", \"label\": {}", train.y[i])
            };
            lines.push(format!("{{\"x\": [{}]{label}}}", x.join(",")));
        }
        lines.push("{\"event\": \"task-end\"}".to_string());
    }
    let input = dir.join("stream.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let d = deploy(&dir, "strategy = \"replay\"\nbudget = \"96k\"\nbatch = 8\n");
    let x86 = dir.join("x86.jsonl");
    let o = d.run(&dir.join("state-x86"), &input, &x86, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let qemu = std::env::var("EDGECL_QEMU_AARCH64").unwrap_or_else(|_| "qemu-aarch64".to_string());
    let arm = dir.join("arm.jsonl");
    let o = Command::new(&qemu)
        .args(["-L", "/usr/aarch64-linux-gnu"])
        .arg(&bin)
        .args(["run", "--quiet", "--backbone", BACKBONE])
        .arg("--image")
        .arg(&d.image)
        .arg("--key")
        .arg(&d.key)
        .arg("--state")
        .arg(dir.join("state-arm"))
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&arm)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{qemu}: {e}"));
    assert!(o.status.success(), "{}", stderr(&o));
    let read = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (a, b) = (read(&x86), read(&arm));
    assert_eq!(a.len(), b.len());
    assert_eq!(a.len(), 201, "200 predictions and the summary");
    let mut worst = 0.0f64;
    for (p, q) in a.iter().zip(&b).take(200) {
        assert_eq!(p["seq"], q["seq"]);
        assert_eq!(p["class"], q["class"], "sample {}", p["seq"]);
        for (s, t) in p["scores"]
            .as_array()
            .unwrap()
            .iter()
            .zip(q["scores"].as_array().unwrap())
        {
            worst = worst.max((s.as_f64().unwrap() - t.as_f64().unwrap()).abs());
        }
    }
    eprintln!("aarch64 under qemu: 200 predictions, the same classes, largest score difference {worst:e}");
    assert!(worst < 1e-5, "{worst}");
    assert_eq!(a[200]["summary"]["updates"], b[200]["summary"]["updates"]);
}

/// Frames from a sensor on an I2C bus (a mock of the bus here), labelled from the side
/// channel; a failed read is a skipped sample that names the error, and reading goes on.
#[test]
fn an_i2c_sensor_gives_labelled_frames_and_a_failed_read_is_skipped() {
    use edgecl::host::runtime::input::{Item, SensorSource};
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
    let frame: Vec<u8> = (0..784).map(|i| (i % 256) as u8).collect();
    let expected = [
        Transaction::write_read(0x68, vec![0], frame.clone()),
        Transaction::write_read(0x68, vec![0], frame.clone()).with_error(ErrorKind::Other),
        Transaction::write_read(0x68, vec![0], frame.clone()),
    ];
    let mut bus = Mock::new(&expected);
    let (tx, rx) = std::sync::mpsc::channel();
    tx.send(r#"{"label": 3}"#.to_string()).unwrap();
    tx.send(r#"{"event": "task-end"}"#.to_string()).unwrap();
    let mut s = SensorSource::new(bus.clone(), 0x68, 784, Some(rx), Duration::ZERO);
    match s.next_item() {
        Item::Sample { x, label } => {
            assert_eq!(label, Some(3));
            assert_eq!((x.len(), x[255], x[256]), (784, 1.0, 0.0));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.next_item(), Item::TaskEnd);
    match s.next_item() {
        Item::Bad(why) => assert!(why.contains("reading the sensor at 0x68 failed"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(s.next_item(), Item::Sample { label: None, .. }));
    bus.done();
}

/// A sensor window over I2C: a frame of little-endian i16 counts, step after step, each
/// times its channel's scale; scales that do not fit the window, or are not numbers, are
/// refused with the reason.
#[test]
fn an_i2c_sensor_gives_windows_of_i16_counts_scaled_per_channel() {
    use edgecl::host::runtime::input::{FrameFormat, Item, SensorSource};
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
    // 100 steps of 6 channels: channel c of step t holds the count (t - 50) * (c + 1).
    let counts: Vec<i16> = (0..600).map(|i| ((i / 6) as i16 - 50) * (i % 6 + 1) as i16).collect();
    let frame: Vec<u8> = counts.iter().flat_map(|c| c.to_le_bytes()).collect();
    let expected = [Transaction::write_read(0x6a, vec![0], frame)];
    let mut bus = Mock::new(&expected);
    let format = FrameFormat::i16_scales("0.5, 0.5, 0.5, 0.25, 0.25, 0.25", 600).unwrap();
    let mut s = SensorSource::with_format(bus.clone(), 0x6a, (600, format), None, Duration::ZERO);
    match s.next_item() {
        Item::Sample { x, label: None } => {
            assert_eq!(x.len(), 600);
            // Step 0: counts -50, -100, ... -300; step 99: 49, 98, ...
            assert_eq!(&x[..6], &[-25.0, -50.0, -75.0, -50.0, -62.5, -75.0]);
            assert_eq!(&x[594..], &[24.5, 49.0, 73.5, 49.0, 61.25, 73.5]);
        }
        other => panic!("{other:?}"),
    }
    bus.done();
    assert_eq!(
        FrameFormat::i16_scales("0.01", 600).unwrap(),
        FrameFormat::I16 { scales: vec![0.01] }
    );
    let e = FrameFormat::i16_scales("1,1,1,1,1,1,1", 600).unwrap_err();
    assert!(e.contains("not whole steps of 7 channels"), "{e}");
    for bad in ["", "0.1,x", "0", "inf"] {
        let e = FrameFormat::i16_scales(bad, 600).unwrap_err();
        assert!(
            e.contains("not a list of finite, non-zero units per count"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn an_i2c_bus_that_cannot_be_opened_is_a_clear_error() {
    let dir = temp_dir("i2c");
    let d = deploy(&dir, "strategy = \"naive\"\nbudget = \"96k\"\n");
    let o = d.run(
        &dir.join("state"),
        Path::new("i2c:/dev/i2c-no-such-bus:0x68"),
        &dir.join("o"),
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("opening the I2C bus /dev/i2c-no-such-bus"),
        "{}",
        stderr(&o)
    );
    let o = d.run(
        &dir.join("state"),
        Path::new("i2c:/dev/i2c-1:0x99"),
        &dir.join("o"),
        &[],
    );
    assert!(stderr(&o).contains("not a 7-bit I2C address"), "{}", stderr(&o));
}

#[test]
fn every_flag_can_come_from_a_toml_file_and_the_command_line_wins() {
    let (l, clean) = lines("toml");
    let input = l.dir.join("toml-in.jsonl");
    std::fs::write(&input, l.good.join("\n")).unwrap();
    let out = l.dir.join("toml.out");
    let toml = format!(
        "image = {:?}\nkey = {:?}\nbackbone = {:?}\nstate = {:?}\ninput = {:?}\noutput = {:?}\ncheckpoint-every = 2\nquiet = true\n",
        l.deploy.image,
        l.deploy.key,
        root().join(BACKBONE),
        l.dir.join("state-toml"),
        input,
        l.dir.join("ignored.out"),
    );
    let config = l.dir.join("run.toml");
    std::fs::write(&config, toml).unwrap();
    let o = edgecl()
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let s = summary(&out);
    assert!(!l.dir.join("ignored.out").exists());
    assert_eq!(s["state_fnv1a"], clean["state_fnv1a"]);
    // Five updates at every second one, and the last: three checkpoints.
    assert_eq!(s["checkpoints"], 3);
    std::fs::write(&config, "imag = \"x\"\n").unwrap();
    let o = edgecl().arg("run").arg("--config").arg(&config).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("imag"), "{}", stderr(&o));
}

/// The runtime's batch-1 tract plan gives the simulator's batched features to the last
/// bit on the shipped backbone: the head of `edgecl run` sees what the simulator's sees.
#[test]
fn the_batch_one_plan_gives_the_batched_features_bit_for_bit() {
    use edgecl::host::onnx::Backbone;
    let onnx = std::fs::read(root().join(BACKBONE)).unwrap();
    let batched = Backbone::from_bytes(&onnx, BACKBONE).unwrap();
    let one = Backbone::per_sample(&onnx, BACKBONE).unwrap();
    let test = edgecl::host::idx::load_split(&root().join("data/mnist"), edgecl::host::idx::Split::Test, None).unwrap();
    let x = test.x.slice(ndarray::s![..600, ..]);
    let all = batched.features(x).unwrap();
    let mut f = vec![0.0f32; one.feature_width()];
    for (row, want) in x.rows().into_iter().zip(all.rows()) {
        one.sample(&row.to_vec(), &mut f).unwrap();
        let same = f.iter().zip(want.iter()).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "a batch-1 feature differs from the batched one");
    }
}
