//! The fuzz targets' seeds and every input that once crashed a target,
//! replayed through the same checks the targets run (`holdline::fuzzing`),
//! so a fix found by fuzzing stays fixed without a nightly toolchain.

use std::path::Path;

fn inputs(dir: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name != "README.md"
        })
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
        .collect();
    found.sort();
    found
}

fn replay(target: &str, check: fn(&[u8])) {
    let mut all = inputs(&format!("fuzz/corpus/{target}"), "");
    all.extend(inputs("fuzz/regressions", &format!("{target}-")));
    assert!(!all.is_empty(), "no inputs for {target}");
    for (name, data) in all {
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{name} fails the {target} target");
    }
}

#[test]
fn pipeline_seeds_and_regressions_replay() {
    replay("pipeline", holdline::fuzzing::pipeline);
    assert!(
        inputs("fuzz/regressions", "pipeline-").len() >= 2,
        "the known pipeline regressions are kept"
    );
}

#[test]
fn request_head_seeds_replay() {
    replay("request_head", holdline::fuzzing::request_head);
}

#[test]
fn pipeline_with_reloads_seeds_replay() {
    replay(
        "pipeline_with_reloads",
        holdline::fuzzing::pipeline_with_reloads,
    );
}

#[test]
fn routing_seeds_replay() {
    replay("routing", holdline::fuzzing::routing);
}

#[test]
fn proxy_header_seeds_replay() {
    replay("proxy_header", holdline::fuzzing::proxy_header);
}
