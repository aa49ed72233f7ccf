//! Files sent with a program (SandboxFusion's `files`, gRPC `Program.files`): in the guest's
//! memory, read, imported and written as CPython reads, imports and writes them in a
//! directory holding the same files; fetched back; gone after every item; never on the
//! host's disk.

use crate::common;
use crate::support;

use std::{path::Path, process::Command, sync::Arc};

use azr_sandbox::{
    Item, Limits, OutputMatch, Rules, Verdict,
    files::{FileLimits, Files},
};
use azr_sandbox_client::{CallOptions, v1};
use base64::Engine as _;

fn files(sent: &[(&str, &str)], fetch: &[&str]) -> Arc<Files> {
    Arc::new(
        Files::from_bytes(
            sent.iter().map(|(p, c)| (*p, c.as_bytes())),
            fetch.iter().map(|p| (*p).to_owned()).collect(),
            FileLimits::default(),
        )
        .expect("valid files"),
    )
}

fn script(program: &str, files: Arc<Files>) -> Item {
    Item::Script {
        program: program.into(),
        imports: vec![],
        stdin: String::new(),
        expected_stdout: None,
        output_match: OutputMatch::Lines,
        files,
    }
}

fn decoded(outcome: &azr_sandbox::Outcome) -> Vec<(String, String)> {
    outcome
        .files
        .iter()
        .map(|f| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&f.base64)
                .expect("base64 from the guest");
            (f.path.clone(), String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect()
}

/// What `python3 -B prog.py` prints with its working directory holding `sent` (the program
/// written there too, as SandboxFusion writes it; the programs below skip its name).
fn python3_in_directory(program: &str, sent: &[(&str, &str)]) -> String {
    let dir = std::env::temp_dir().join(format!(
        "azr-files-{}-{}",
        std::process::id(),
        rand_suffix(program)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, content) in sent {
        let at = dir.join(path);
        std::fs::create_dir_all(at.parent().unwrap_or(Path::new("."))).expect("mkdir");
        std::fs::write(&at, content).expect("write a sent file");
    }
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("__prog__.py"), program).expect("write the program");
    let out = Command::new("python3")
        .args(["-B", "__prog__.py"])
        .current_dir(&dir)
        .env("PYTHONHASHSEED", "0")
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_dir_all(&dir);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or_default()
    )
}

fn rand_suffix(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

const SENT: &[(&str, &str)] = &[
    (
        "cases.json",
        r#"[{"input": [1, 2], "output": 3}, {"input": [5, 5], "output": 10}]"#,
    ),
    ("notes.txt", "first line\nsecond line\r\nthird"),
    (
        "helper.py",
        "CALLS = []\ndef add(a, b):\n    CALLS.append((a, b))\n    return a + b\n",
    ),
    (
        "pkg/__init__.py",
        "from .inner import VALUE\nNAME = __name__\n",
    ),
    ("pkg/inner.py", "VALUE = 42\n"),
    ("data/deep/er/leaf.txt", "leaf"),
];

/// Programs that use files the ways graders and solutions do; each prints what it sees.
const PROGRAMS: &[&str] = &[
    // Reading: whole, by line, binary, seek and tell, JSON.
    r#"
import json
cases = json.load(open("cases.json"))
print([c["output"] for c in cases])
with open("notes.txt") as f:
    print([line for line in f])
with open("notes.txt", newline="") as f:
    print(repr(f.read()))
with open("notes.txt", "rb") as f:
    print(f.read(5), f.tell(), f.seek(-5, 2), f.read())
print(open("data/deep/er/leaf.txt").read())
"#,
    // Importing: a module, a package with a relative import, module state shared.
    r#"
import helper
from helper import add
import pkg, pkg.inner
from pkg import inner
print(add(2, 3), helper.add(1, 1), len(helper.CALLS), helper.__name__)
print(pkg.VALUE, pkg.NAME, inner.VALUE, pkg.inner is inner)
"#,
    // Writing: every mode, then reading back what was written.
    r#"
with open("out.txt", "w") as f:
    f.write("a\n")
    print("b", file=f)
with open("out.txt", "a") as f:
    f.writelines(["c\n", "d\n"])
print(repr(open("out.txt").read()))
with open("out.txt", "r+") as f:
    f.seek(2)
    f.write("B")
print(repr(open("out.txt").read()))
with open("bin.dat", "wb") as f:
    f.write(bytes(range(5)))
print(list(open("bin.dat", "rb").read()))
with open("text.txt", "w") as f:
    f.write("x\ny\n")
print(open("text.txt", "rb").read())
try:
    open("out.txt", "x")
except FileExistsError as e:
    print("exists", e.strerror, e.filename)
with open("new.txt", "x") as f:
    f.write("fresh")
print(open("new.txt").read())
"#,
    // Directories and the os and pathlib views of them.
    r#"
import os, pathlib, glob
os.makedirs("made/sub", exist_ok=True)
open("made/sub/f.txt", "w").write("1")
print(os.path.isdir("made"), os.path.isfile("made/sub/f.txt"), os.path.exists("nope"))
print(os.path.getsize("notes.txt"), os.stat("cases.json").st_size > 0)
print(sorted(n for n in os.listdir(".") if not n.startswith("__prog")))
print(sorted(os.listdir("data/deep")))
print(sorted((d, sorted(dirs), sorted(fs)) for d, dirs, fs in os.walk("data")))
os.rename("made/sub/f.txt", "made/g.txt")
print(sorted(os.listdir("made")), sorted(os.listdir("made/sub")))
os.remove("made/g.txt")
os.rmdir("made/sub")
print(os.listdir("made"))
p = pathlib.Path("made") / "p.txt"
p.write_text("via pathlib")
print(p.read_text(), p.exists(), p.is_file(), p.name, p.suffix)
print(sorted(str(q) for q in pathlib.Path("pkg").glob("*.py")))
print(sorted(glob.glob("data/**/*.txt", recursive=True)))
with os.scandir("pkg") as it:
    print(sorted((e.name, e.is_file(), e.is_dir()) for e in it))
"#,
    // The errors CPython raises, by type, message and file name.
    r#"
import os
for attempt in (
    lambda: open("missing.txt"),
    lambda: open("data"),
    lambda: open("missing/dir/x.txt", "w"),
    lambda: os.listdir("notes.txt"),
    lambda: os.rmdir("data"),
    lambda: os.remove("data"),
    lambda: os.mkdir("data"),
    lambda: os.stat("nowhere"),
    lambda: open("notes.txt", "rw"),
    lambda: open("notes.txt", "rb", encoding="utf-8"),
    lambda: open("notes.txt").write("x"),
    lambda: open("o.txt", "w").read(),
):
    try:
        attempt()
        print("no error")
    except OSError as e:
        print(type(e).__name__, e.strerror, e.filename)
    except ValueError as e:
        print("ValueError", e)
"#,
];

#[test]
fn programs_see_their_files_as_python3_sees_them_in_a_directory() {
    let sent = files(SENT, &[]);
    let outcomes = common::items(PROGRAMS.iter().map(|p| script(p, sent.clone())).collect());
    for (program, outcome) in PROGRAMS.iter().zip(&outcomes) {
        let ours = format!(
            "{}{}",
            outcome.stdout,
            outcome.stderr.lines().last().unwrap_or_default()
        );
        let cpython = python3_in_directory(program, SENT);
        assert_eq!(ours, cpython, "program:\n{program}\noutcome: {outcome:?}");
        assert_eq!(outcome.verdict, Verdict::Ok, "{outcome:?}");
    }
}

#[test]
fn every_item_starts_from_the_files_as_sent() {
    let sent = files(&[("log.txt", "start\n")], &[]);
    let program = "def log(x):\n    with open('log.txt', 'a') as f:\n        f.write(x)\n    return open('log.txt').read()";
    let call = |x: &str| Item::Call {
        program: program.into(),
        imports: vec![],
        function: "log".into(),
        arguments: format!("{x:?}"),
        expected: format!("{:?}", format!("start\n{x}")),
        files: sent.clone(),
    };
    let outcomes = common::items(vec![call("one"), call("two"), call("three")]);
    for o in &outcomes {
        assert_eq!(o.passed, Some(true), "{o:?}");
    }
    // Another program, another request: nothing of the files above.
    let alone = common::items(vec![script(
        "import os\nprint(os.listdir('.'))",
        Arc::new(Files::default()),
    )]);
    assert_eq!(alone[0].stdout, "[]\n", "{alone:?}");
}

#[test]
fn fetched_files_come_back_in_order_missing_ones_left_out_and_the_cap_held() {
    let program = "\
import os
os.makedirs('out', exist_ok=True)
open('out/a.txt', 'w').write('A')
unclosed = open('b.txt', 'w')
unclosed.write('B, never closed')
open('big.bin', 'wb').write(b'x' * 2000)
";
    let sent = Arc::new(
        Files::from_bytes(
            [("kept.txt", &b"as sent"[..])],
            [
                "b.txt",
                "missing.txt",
                "out/a.txt",
                "kept.txt",
                "big.bin",
                "out",
            ]
            .map(str::to_owned)
            .to_vec(),
            FileLimits {
                max_count: 4,
                max_bytes: 1000,
            },
        )
        .expect("files"),
    );
    let outcome = common::items(vec![script(program, sent)]).remove(0);
    assert_eq!(outcome.verdict, Verdict::Ok, "{outcome:?}");
    assert_eq!(
        decoded(&outcome),
        [
            ("b.txt", "B, never closed"),
            ("out/a.txt", "A"),
            ("kept.txt", "as sent")
        ]
        .map(|(p, c)| (p.to_owned(), c.to_owned()))
    );
    assert!(
        outcome.stderr.contains("\"big.bin\" not fetched"),
        "{outcome:?}"
    );
}

#[test]
fn written_files_count_against_the_memory_cap_and_a_timed_out_item_fetches_nothing() {
    let sent = files(&[], &["big.bin", "loop.txt"]);
    let limits = Limits {
        memory_bytes: 256 << 20,
        ..common::tight()
    };
    let sandbox = common::sandbox();
    let big = sandbox
        .run(
            vec![script(
                "open('big.bin', 'wb').write(b'x' * (400 << 20))",
                sent.clone(),
            )],
            &limits,
            &Rules::default(),
        )
        .remove(0);
    assert_eq!(big.verdict, Verdict::OutOfMemory, "{big:?}");
    // The write failed with `MemoryError`, as CPython's would on a full disk: the file was
    // created by `open` and holds nothing.
    assert!(big.files.iter().all(|f| f.base64.is_empty()), "{big:?}");
    let looping = sandbox
        .run(
            vec![script(
                "open('loop.txt', 'w').write('x')\nwhile True:\n    pass",
                sent,
            )],
            &Limits {
                timeout_ms: 300,
                ..limits
            },
            &Rules::default(),
        )
        .remove(0);
    assert!(
        matches!(looping.verdict, Verdict::Timeout | Verdict::OutOfFuel),
        "{looping:?}"
    );
    assert!(looping.files.is_empty());
}

/// Every regular file the process has open, and every file named `marker` under `dirs`.
fn host_traces(pid: u32, marker: &str, dirs: &[&Path]) -> (Vec<String>, Vec<String>) {
    let open: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|target| target.is_file())
                .map(|target| target.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut found = Vec::new();
    for dir in dirs {
        let out = Command::new("find")
            .arg(dir)
            .args(["-xdev", "-name", marker])
            .output()
            .expect("find runs");
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned),
        );
    }
    (open, found)
}

#[test]
fn the_daemon_serves_files_over_grpc_and_nothing_reaches_its_disk() {
    let daemon = support::Daemon::start("[server]\nfiles_max_count = 3\n");
    let marker = format!("azr-marker-{}.txt", std::process::id());
    let cwd = std::fs::read_link(format!("/proc/{}/cwd", daemon.pid())).expect("cwd");
    let tmp = std::env::temp_dir();
    let before = host_traces(daemon.pid(), &marker, &[&cwd, &tmp]);
    daemon.block_on(async {
        let client = daemon.client();
        let options = CallOptions::default();
        let program = |files: &[(&str, &str)], fetch: &[&str]| v1::Program {
            source: "import json, harness\ncases = json.load(open('cases.json'))\n\
                     print(harness.check(cases))\nopen(NAME, 'w').write('written')"
                .replace("NAME", &format!("{marker:?}")),
            imports: vec![],
            files: files
                .iter()
                .map(|(p, c)| ((*p).to_owned(), c.as_bytes().to_vec()))
                .collect(),
            fetch_files: fetch.iter().map(|p| (*p).to_owned()).collect(),
        };
        let sent = [
            ("cases.json", "[1, 2, 3]"),
            ("harness.py", "def check(cases):\n    return sum(cases)\n"),
        ];
        let stdio = v1::test_task::Kind::Stdio(v1::StdioCase {
            stdin: String::new(),
            expected_stdout: Some("6".into()),
            output_match: v1::OutputMatch::Lines as i32,
        });
        let outcome = client
            .test(
                v1::TestTask {
                    program: Some(program(&sent, &[&marker])),
                    kind: Some(stdio.clone()),
                },
                &options,
            )
            .await
            .expect("test with files");
        assert_eq!(outcome.passed, Some(true), "{outcome:?}");
        assert_eq!(
            outcome.files.get(&marker).map(Vec::as_slice),
            Some(&b"written"[..]),
            "{outcome:?}"
        );

        for (files, why) in [
            (&[("../x.py", "")][..], "`..`"),
            (
                &[("a", ""), ("b", ""), ("c", ""), ("d", "")][..],
                "files_max_count",
            ),
        ] {
            let refused = client
                .test(
                    v1::TestTask {
                        program: Some(program(files, &[])),
                        kind: Some(stdio.clone()),
                    },
                    &options,
                )
                .await
                .expect_err("refused");
            assert_eq!(refused.code(), Some(tonic::Code::InvalidArgument));
            assert!(refused.to_string().contains(why), "{refused}");
        }
        let validate = client
            .validate(
                v1::ValidateTask {
                    program: Some(program(&sent, &[])),
                    input: "1".into(),
                },
                &options,
            )
            .await
            .expect_err("files on a validation");
        assert_eq!(validate.code(), Some(tonic::Code::InvalidArgument));
        let health = client.health().await.expect("health");
        assert_eq!(
            (health.files_max_count, health.files_max_bytes),
            (3, 8 << 20)
        );
    });
    let after = host_traces(daemon.pid(), &marker, &[&cwd, &tmp]);
    assert_eq!(after, before, "the daemon's open files or the disk changed");
    assert!(after.1.is_empty(), "{after:?}");
}
