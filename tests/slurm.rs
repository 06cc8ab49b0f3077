#![cfg(feature = "std")]
//! `edgecl sweep --slurm` on a real Slurm cluster: a single-node cluster (Debian's
//! `slurm-wlm` and `munge`, which `.ci/run` installs) started by the test on localhost
//! with a generated slurm.conf and its own munge key, ports and state folders.
//!
//! Where Slurm cannot start (not installed, not root), each test says so and does not
//! run; under CI (`CI` set) that is a failure, since CI installs it.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One cluster at a time: the machine's cores are its only node's.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

/// A running single-node cluster; stopped (its daemons killed, its folder removed) when
/// dropped.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    daemons: Vec<Child>,
}

/// A free TCP port on localhost (the kernel's pick).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn found(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Cluster {
    /// Starts munged, slurmctld and slurmd, and waits for the node to be idle; or why not.
    fn start(name: &str) -> Result<Cluster, String> {
        for p in ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo"] {
            if !found(p) {
                return Err(format!(
                    "`{p}` is not installed (Debian: apt-get install slurm-wlm munge)"
                ));
            }
        }
        let uid = Command::new("id").arg("-u").output().map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("slurmd runs jobs as root only: run the tests as root".into());
        }
        let dir = std::env::temp_dir().join(format!("edgecl-slurm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["munge", "state", "spool", "run", "log"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
        }
        use std::os::unix::fs::PermissionsExt;
        let key = dir.join("munge/munge.key");
        let mut random = vec![0u8; 1024];
        {
            use std::io::Read;
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut random))
                .map_err(|e| e.to_string())?;
        }
        std::fs::write(&key, &random).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).map_err(|e| e.to_string())?;
        std::fs::set_permissions(dir.join("munge"), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
        let socket = dir.join("run/munge.sock");
        let p = |s: &str| dir.join(s).display().to_string();
        let mut cluster = Cluster {
            conf: dir.join("slurm.conf"),
            dir: dir.clone(),
            daemons: Vec::new(),
        };
        let munged = Command::new("munged")
            .arg("--foreground")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--log-file={}", p("log/munged.log")))
            .arg(format!("--pid-file={}", p("run/munged.pid")))
            .arg(format!("--seed-file={}", p("munge/seed")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("munged: {e}"))?;
        cluster.daemons.push(munged);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let conf = format!(
            "ClusterName=edgecl\nSlurmctldHost=localhost\nSlurmctldPort={}\nSlurmdPort={}\n\
             AuthType=auth/munge\nAuthInfo=socket={}\nCredType=cred/munge\nSlurmUser=root\nSlurmdUser=root\n\
             StateSaveLocation={}\nSlurmdSpoolDir={}\nSlurmctldPidFile={}\nSlurmdPidFile={}\n\
             SlurmctldLogFile={}\nSlurmdLogFile={}\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\nSchedulerType=sched/backfill\n\
             JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\nMpiDefault=none\n\
             ReturnToService=2\nKillWait=5\nMinJobAge=300\n\
             NodeName=localhost NodeHostname=localhost CPUs={cpus} RealMemory=2000 State=UNKNOWN\n\
             PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            free_port(),
            free_port(),
            socket.display(),
            p("state"),
            p("spool"),
            p("run/slurmctld.pid"),
            p("run/slurmd.pid"),
            p("log/slurmctld.log"),
            p("log/slurmd.log"),
        );
        std::fs::write(&cluster.conf, conf).map_err(|e| e.to_string())?;
        // munged makes its socket when it is ready.
        wait_for(Duration::from_secs(10), || socket.exists()).map_err(|()| "munged made no socket".to_string())?;
        for (daemon, args) in [("slurmctld", vec!["-D"]), ("slurmd", vec!["-D", "-N", "localhost"])] {
            let child = Command::new(daemon)
                .args(&args)
                .arg("-f")
                .arg(&cluster.conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("{daemon}: {e}"))?;
            cluster.daemons.push(child);
        }
        let idle = wait_for(Duration::from_secs(60), || {
            cluster
                .cmd("sinfo")
                .args(["-h", "-o", "%T"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
        });
        if idle.is_err() {
            let log = |f: &str| std::fs::read_to_string(dir.join("log").join(f)).unwrap_or_default();
            return Err(format!(
                "the node never came up idle\nslurmctld.log:\n{}\nslurmd.log:\n{}",
                log("slurmctld.log"),
                log("slurmd.log")
            ));
        }
        Ok(cluster)
    }

    /// A command that talks to this cluster.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// `edgecl ARGS` against this cluster; its standard output, or a panic with its error.
    fn edgecl(&self, args: &[&str]) -> String {
        let o = self
            .cmd(env!("CARGO_BIN_EXE_edgecl"))
            .args(args)
            .output()
            .expect("edgecl runs");
        assert!(
            o.status.success(),
            "edgecl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Jobs of `ids` the cluster still holds.
    fn held(&self, ids: &[String]) -> Vec<String> {
        let o = self
            .cmd("squeue")
            .args(["-h", "-o", "%F"])
            .output()
            .expect("squeue runs");
        let text = String::from_utf8_lossy(&o.stdout);
        text.lines()
            .map(str::trim)
            .filter(|l| ids.iter().any(|i| i == l))
            .map(str::to_string)
            .collect()
    }

    /// Waits until the cluster holds none of `ids`.
    fn wait_done(&self, ids: &[String]) {
        wait_for(Duration::from_secs(300), || self.held(ids).is_empty())
            .unwrap_or_else(|()| panic!("jobs {ids:?} still queued after 300 s"));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.daemons.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Job steps the daemons left (none when the jobs ended).
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for(limit: Duration, mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(())
}

/// A started cluster, or `None` after saying why this test does not run.
fn cluster(name: &str) -> Option<Cluster> {
    match Cluster::start(name) {
        Ok(c) => Some(c),
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs slurm-wlm and munge, yet Slurm did not start: {why}"
            );
            eprintln!("Slurm could not start, so this test did not run: {why}");
            None
        }
    }
}

/// The 12-cell grid: 2 boards x 2 settings x 3 strategies, one budget and seed; the
/// progressive columns fail under class-il (they need task labels).
const GRID: [&str; 16] = [
    "--model",
    "none",
    "--boards",
    "netduinoplus2,rp-pico",
    "--settings",
    "task-il,class-il",
    "--strategies",
    "naive,si,progressive",
    "--budgets",
    "16k",
    "--seeds",
    "1",
    "-q",
    "--jobs",
    "2",
    "--iters",
];

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgecl-slurm-sweep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `v` without run times (every key that names seconds).
fn timeless(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.contains("second"))
                .map(|(k, v)| (k.clone(), timeless(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(timeless).collect()),
        v => v.clone(),
    }
}

/// The cells' files of a sweep folder: name and bytes.
fn cell_files(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(out.join("cells"))
        .map(|d| {
            d.map(|e| {
                let p = e.unwrap().path();
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .filter(|(n, _)| n.ends_with(".json"))
            .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The `cells ID ARRAY` lines of a sweep's slurm/jobs.txt.
fn arrays(out: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(out.join("slurm/jobs.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&"cells")).then(|| (f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

/// Every recorded job id of a sweep.
fn all_jobs(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("slurm/jobs.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

/// The indices an array list such as `0-3,7` names.
fn indices(list: &str) -> BTreeSet<usize> {
    list.split(',')
        .flat_map(|r| match r.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().unwrap()..=b.parse().unwrap()).collect::<Vec<_>>(),
            None => vec![r.parse().unwrap()],
        })
        .collect()
}

#[test]
fn a_sweep_on_slurm_equals_the_local_run_and_names_its_failed_cells() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let Some(cluster) = cluster("same") else { return };
    let (local, remote) = (temp("local"), temp("remote"));
    let mut args: Vec<&str> = GRID.to_vec();
    args.push("30");
    let local_s = local.display().to_string();
    cluster.edgecl(&[&["sweep"][..], &args, &["--out", &local_s]].concat());
    let remote_s = remote.display().to_string();
    let printed = cluster.edgecl(
        &[
            &["sweep"][..],
            &args,
            &["--out", &remote_s, "--slurm", "--array-parallel", "2", "--time", "10"],
        ]
        .concat(),
    );
    let id = printed.lines().last().unwrap_or("").trim().to_string();
    assert!(
        printed.contains(&format!("submitted job array {id}: 12 of 12 cells (0-11)")),
        "{printed}"
    );
    let script = std::fs::read_to_string(remote.join("slurm/cells.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-11%2"), "{script}");
    cluster.wait_done(&all_jobs(&remote));

    // Every cell file equal to the local run's, run times excepted.
    let (a, b) = (cell_files(&local), cell_files(&remote));
    assert_eq!(a.len(), 12);
    assert_eq!(
        a.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        b.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        let (x, y): (Value, Value) = (serde_json::from_slice(x).unwrap(), serde_json::from_slice(y).unwrap());
        assert_eq!(
            timeless(&x),
            timeless(&y),
            "{name} differs between the local run and Slurm"
        );
    }
    // The report job drew the summary, equal to the local one.
    let (sa, sb) = (json(&local.join("sweep.json")), json(&remote.join("sweep.json")));
    assert_eq!(sb["runner"], "report", "the report job did not write sweep.json");
    assert_eq!(timeless(&sa["summary"]), timeless(&sb["summary"]));
    assert_eq!(timeless(&sa["cells"]), timeless(&sb["cells"]));
    assert_eq!(sa["summary"].as_array().unwrap().len(), 12);
    // The cells that exited non-zero are failed, in the summary and on the page.
    assert_eq!(
        (sb["cells_failed"].as_u64(), sb["cells_missing"].as_u64()),
        (Some(2), Some(0))
    );
    let failed: Vec<&Value> = sb["summary"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["cells_failed"].as_u64() == Some(1))
        .collect();
    assert_eq!(failed.len(), 2);
    assert!(failed
        .iter()
        .all(|r| r["strategy"] == "progressive" && r["setting"] == "class-il"));
    let html = std::fs::read_to_string(remote.join("report.html")).unwrap();
    assert!(html.contains("id=\"failed\""), "no table of failed cells");
    assert!(html.contains("netduinoplus2-split-class-il-progressive-16384-1.json"));
    assert!(html.contains("progressive columns need task labels"));
    assert!(
        html.contains("id=\"summary-rp-pico-split-class-il\""),
        "no group of rp-pico class-il"
    );
    let log = std::fs::read_dir(remote.join("slurm/logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("cell-5-{id}"))
        })
        .expect("cell 5's log");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        log.contains("cell 5 (netduinoplus2-split-class-il-progressive-16384-1.json) failed"),
        "{log}"
    );
    std::fs::remove_dir_all(&local).unwrap();
    std::fs::remove_dir_all(&remote).unwrap();
}

#[test]
fn a_cancelled_array_resubmits_only_its_missing_and_failed_cells() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let Some(cluster) = cluster("cancel") else { return };
    let out = temp("cancel");
    let out_s = out.display().to_string();
    // Longer cells, one at a time, so the array is cut mid-run.
    let mut args: Vec<&str> = GRID.to_vec();
    args.push("1500");
    let printed = cluster.edgecl(
        &[
            &["sweep"][..],
            &args,
            &["--out", &out_s, "--slurm", "--array-parallel", "1"],
        ]
        .concat(),
    );
    let id = printed.lines().last().unwrap_or("").trim().to_string();
    // Two cells done and a third running: cancel the array.
    let cells = out.join("cells");
    let running = |i: usize| {
        std::fs::read_dir(out.join("slurm/logs")).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&format!("cell-{i}-")))
        })
    };
    wait_for(Duration::from_secs(240), || cell_files(&out).len() >= 2 && running(2))
        .expect("two cells done and the third started");
    std::thread::sleep(Duration::from_millis(300));
    let o = cluster.cmd("scancel").arg(&id).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    cluster.wait_done(&all_jobs(&out));
    let before = cell_files(&out);
    let first = json(&out.join("sweep.json"));
    let missing = first["cells_missing"].as_u64().unwrap();
    let failed = first["cells_failed"].as_u64().unwrap();
    assert!(
        missing >= 8,
        "{missing} cells missing after the cancel: it came too late"
    );
    assert_eq!(first["cells_total"].as_u64(), Some(12));
    assert!(std::fs::read_dir(&cells).unwrap().count() < 12);
    let done: BTreeSet<String> = before
        .iter()
        .filter(|(_, b)| serde_json::from_slice::<Value>(b).unwrap().get("fits").is_some())
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(done.len() as u64, 12 - missing - failed);

    // New job options replace the saved ones: three cells per task, two tasks at once.
    let printed = cluster.edgecl(&[
        "sweep",
        "--resubmit",
        &out_s,
        "--array-parallel",
        "2",
        "--cells-per-task",
        "3",
    ]);
    assert!(
        printed.contains(&format!("12 cells: {failed} failed, {missing} missing")),
        "{printed}"
    );
    let jobs = arrays(&out);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let (second, list) = &jobs[1];
    // The array holds exactly the cells without a result.
    let listing = std::fs::read_to_string(out.join("cells.txt")).unwrap();
    let files: Vec<&str> = listing
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').nth(7).unwrap())
        .collect();
    let want: BTreeSet<usize> = (0..12).filter(|&i| !done.contains(files[i])).collect();
    assert_eq!(indices(list), want);
    let script = std::fs::read_to_string(out.join("slurm/cells.sbatch")).unwrap();
    let tasks = want.len().div_ceil(3);
    assert!(
        script.contains(&format!("#SBATCH --array=0-{}%2\n", tasks - 1)),
        "{script}"
    );
    cluster.wait_done(&all_jobs(&out));

    // Only those ran again (the cells the second job's logs name), and the finished cells'
    // bytes are unchanged.
    let mut ran = BTreeSet::new();
    for e in std::fs::read_dir(out.join("slurm/logs")).unwrap() {
        let p = e.unwrap().path();
        if !p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with(&format!("-{second}.log"))
        {
            continue;
        }
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            let Some((_, rest)) = line.split_once("cell ") else {
                continue;
            };
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if rest[digits.len()..].starts_with(" (") {
                ran.insert(digits.parse::<usize>().unwrap());
            }
        }
    }
    let after = cell_files(&out);
    for (name, bytes) in &before {
        if done.contains(name) {
            let now = &after.iter().find(|(n, _)| n == name).unwrap().1;
            assert_eq!(now, bytes, "{name} was run again");
        }
    }
    let last = json(&out.join("sweep.json"));
    assert_eq!(last["cells_missing"].as_u64(), Some(0), "{}", last["failed"]);
    // The two class-il progressive cells fail wherever they run; nothing else does.
    assert_eq!(last["cells_failed"].as_u64(), Some(2), "{}", last["failed"]);
    std::fs::remove_dir_all(&out).unwrap();
}
