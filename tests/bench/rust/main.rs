//! The Rust benchmark harness (`tests/bench/README.md`): raw OpenMLS, the floor,
//! and MLSKit through its public Rust API over `memory_storage()` and
//! `sqlite_storage()`. Prints one JSON line per operation and group size.
//!
//! ```text
//! cargo bench --bench layers -- --layer rust-memory --sizes 2,10 --iterations 20
//! ```

mod raw;
mod sdk;

use std::io::Write as _;
use std::time::Instant;

/// Storage callbacks seen by the counted stores of the acting members.
#[derive(Clone, Copy, Default)]
pub struct Counts {
    pub reads: u64,
    pub commits: u64,
    pub bytes_written: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, before: Counts) -> Counts {
        Counts {
            reads: self.reads - before.reads,
            commits: self.commits - before.commits,
            bytes_written: self.bytes_written - before.bytes_written,
        }
    }
}

/// Who acts in an operation, for the storage counts.
#[derive(Clone, Copy)]
pub enum Actor {
    Creator,
    Member,
    Joiner,
    /// The fresh client of the `create` operation.
    Fresh,
    /// Creator and member together (a message sent and received).
    Both,
}

/// One layer under test, holding a group of A (creator), B (member), fillers
/// and the member J who joins and leaves each iteration. Every method panics
/// on a wrong result: a benchmark of a broken operation must not report.
pub trait Layer {
    /// Builds the group of `size` members (A, B and fillers); not timed.
    fn setup(&mut self, size: usize);
    /// A new client J with one key package, returned serialized; not timed.
    fn new_joiner(&mut self) -> Vec<u8>;
    /// A adds J's key package and merges: returns (commit, welcome).
    fn add(&mut self, key_package: &[u8]) -> (Vec<u8>, Vec<u8>);
    /// B processes a commit and merges it.
    fn process(&mut self, commit: &[u8]);
    /// J joins from the Welcome.
    fn join(&mut self, welcome: &[u8]);
    /// A removes J and merges: returns the commit.
    fn remove_joiner(&mut self) -> Vec<u8>;
    /// A updates its own leaf and merges: returns the commit.
    fn update(&mut self) -> Vec<u8>;
    /// A encrypts `payload`, B decrypts it (and checks it).
    fn send(&mut self, payload: &[u8]);
    /// Prepares a fresh client for `create`; not timed.
    fn prepare_create(&mut self);
    /// The fresh client creates a group.
    fn create(&mut self);
    /// A new client over A's storage opens the group: the restart.
    fn load(&mut self);
    /// Panics unless A and B are in the same epoch with the same authenticator.
    fn check_agreement(&self);
    /// Storage callbacks so far, or none where the layer does not count.
    fn counts(&self, actor: Actor) -> Option<Counts>;
}

const ALL_OPS: [&str; 12] = [
    "create",
    "add",
    "process_add",
    "join",
    "remove",
    "process_remove",
    "update",
    "process_update",
    "msg_100",
    "msg_1k",
    "msg_64k",
    "load",
];

struct Args {
    layer: String,
    sizes: Vec<usize>,
    iterations: usize,
    ops: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: layers --layer raw-openmls|rust-memory|rust-sqlite --sizes 2,10 \
         --iterations K [--ops add,process_add,...]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        layer: String::new(),
        sizes: vec![2, 10],
        iterations: 10,
        ops: ALL_OPS.iter().map(|s| s.to_string()).collect(),
    };
    // Lossy: a non-UTF-8 argument becomes a usage error, not a panic.
    let mut it = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    while let Some(flag) = it.next() {
        // `cargo bench` appends `--bench`; ignore it.
        if flag == "--bench" {
            continue;
        }
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--layer" => args.layer = value,
            "--sizes" => {
                args.sizes = value
                    .split(',')
                    .map(|s| s.parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--iterations" => args.iterations = value.parse().unwrap_or_else(|_| usage()),
            "--ops" => {
                args.ops = value.split(',').map(str::to_string).collect();
                if let Some(bad) = args.ops.iter().find(|o| !ALL_OPS.contains(&o.as_str())) {
                    eprintln!("unknown op {bad}");
                    usage()
                }
            }
            _ => usage(),
        }
    }
    if args.sizes.iter().any(|&n| n < 2) || args.iterations == 0 {
        usage()
    }
    args
}

fn new_layer(name: &str) -> Box<dyn Layer> {
    match name {
        "raw-openmls" => Box::new(raw::RawOpenMls::new()),
        "rust-memory" => Box::new(sdk::Sdk::new(sdk::Store::Memory)),
        "rust-sqlite" => Box::new(sdk::Sdk::new(sdk::Store::Sqlite)),
        _ => usage(),
    }
}

/// Samples of one operation at one size.
struct Series {
    op: &'static str,
    size: usize,
    samples_us: Vec<f64>,
    counts: Option<Counts>,
}

impl Series {
    fn new(op: &'static str, size: usize) -> Self {
        Self {
            op,
            size,
            samples_us: Vec::new(),
            counts: None,
        }
    }

    fn json(&self, layer: &str) -> String {
        let samples: Vec<String> = self.samples_us.iter().map(|s| format!("{s:.3}")).collect();
        let n = self.samples_us.len().max(1) as f64;
        let mean = |f: fn(&Counts) -> u64| match &self.counts {
            Some(c) => format!("{:.2}", f(c) as f64 / n),
            None => "null".into(),
        };
        format!(
            "{{\"layer\": \"{layer}\", \"op\": \"{}\", \"size\": {}, \"samples_us\": [{}], \
             \"reads\": {}, \"commits\": {}, \"bytes_written\": {}}}",
            self.op,
            self.size,
            samples.join(", "),
            mean(|c| c.reads),
            mean(|c| c.commits),
            mean(|c| c.bytes_written),
        )
    }
}

/// Times `op` and adds its duration and its storage callbacks to `series`.
fn measure<T>(
    layer: &mut dyn Layer,
    series: Option<&mut Series>,
    actor: Actor,
    op: impl FnOnce(&mut dyn Layer) -> T,
) -> T {
    let before = layer.counts(actor);
    let start = Instant::now();
    let out = op(layer);
    let elapsed = start.elapsed();
    if let Some(series) = series {
        series.samples_us.push(elapsed.as_secs_f64() * 1e6);
        if let (Some(before), Some(after)) = (before, layer.counts(actor)) {
            let c = series.counts.get_or_insert_with(Counts::default);
            let d = after - before;
            c.reads += d.reads;
            c.commits += d.commits;
            c.bytes_written += d.bytes_written;
        }
    }
    out
}

const PAYLOADS: [(&str, usize); 3] = [("msg_100", 100), ("msg_1k", 1024), ("msg_64k", 65536)];

/// The series of `name`, when this iteration is recorded (not the warm-up).
fn pick<'a>(series: &'a mut [Series], name: &str, record: bool) -> Option<&'a mut Series> {
    series.iter_mut().find(|s| record && s.op == name)
}

/// One iteration of the scenario; `record` is false for the warm-up.
fn iteration(layer: &mut dyn Layer, series: &mut [Series], ops: &[String], record: bool) {
    let wants = |op: &str| ops.iter().any(|o| o == op);
    let membership = ["add", "process_add", "join", "remove", "process_remove"];
    if membership.iter().any(|op| wants(op)) {
        let kp = layer.new_joiner();
        let add = pick(series, "add", record);
        let (commit, welcome) = measure(layer, add, Actor::Creator, |l| l.add(&kp));
        let process = pick(series, "process_add", record);
        measure(layer, process, Actor::Member, |l| l.process(&commit));
        layer.check_agreement();
        let join = pick(series, "join", record);
        measure(layer, join, Actor::Joiner, |l| l.join(&welcome));
        // Back to the original size (timed only when asked for).
        let remove = pick(series, "remove", record);
        let commit = measure(layer, remove, Actor::Creator, |l| l.remove_joiner());
        let process = pick(series, "process_remove", record);
        measure(layer, process, Actor::Member, |l| l.process(&commit));
        layer.check_agreement();
    }
    if wants("update") || wants("process_update") {
        let update = pick(series, "update", record);
        let commit = measure(layer, update, Actor::Creator, |l| l.update());
        let process = pick(series, "process_update", record);
        measure(layer, process, Actor::Member, |l| l.process(&commit));
        layer.check_agreement();
    }
    for (name, len) in PAYLOADS {
        if wants(name) {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let send = pick(series, name, record);
            measure(layer, send, Actor::Both, |l| l.send(&payload));
        }
    }
}

/// One restart of A (a new client over its store takes it over). Runs after
/// every other iteration, so no other operation is measured on the cold
/// cache of a just-restarted client.
fn restart(layer: &mut dyn Layer, series: &mut [Series], record: bool) {
    let load = pick(series, "load", record);
    measure(layer, load, Actor::Creator, |l| l.load());
}

fn main() {
    let args = parse_args();
    let mut stdout = std::io::stdout().lock();
    let mut emit = |line: String| {
        writeln!(stdout, "{line}").expect("stdout");
        stdout.flush().expect("stdout");
    };
    let mut layer = new_layer(&args.layer);

    if args.ops.iter().any(|o| o == "create") {
        let mut series = Series::new("create", 1);
        for i in 0..=args.iterations {
            layer.prepare_create();
            let s = (i > 0).then_some(&mut series);
            measure(layer.as_mut(), s, Actor::Fresh, |l| l.create());
        }
        emit(series.json(&args.layer));
    }

    let group_ops: Vec<&'static str> = ALL_OPS
        .iter()
        .copied()
        .filter(|op| *op != "create" && args.ops.iter().any(|o| o == op))
        .collect();
    if group_ops.is_empty() {
        return;
    }
    for &size in &args.sizes {
        let mut layer = new_layer(&args.layer);
        let t = Instant::now();
        layer.setup(size);
        layer.check_agreement();
        eprintln!(
            "{}: group of {size} set up in {:.1} s",
            args.layer,
            t.elapsed().as_secs_f64()
        );
        let mut series: Vec<Series> = group_ops.iter().map(|op| Series::new(op, size)).collect();
        iteration(layer.as_mut(), &mut series, &args.ops, false);
        for _ in 0..args.iterations {
            iteration(layer.as_mut(), &mut series, &args.ops, true);
        }
        if args.ops.iter().any(|o| o == "load") {
            restart(layer.as_mut(), &mut series, false);
            for _ in 0..args.iterations {
                restart(layer.as_mut(), &mut series, true);
            }
        }
        for s in &series {
            emit(s.json(&args.layer));
        }
    }
}
