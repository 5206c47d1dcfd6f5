//! Build facts for `holdline --version`: the commit built (when built
//! from a git checkout) and the versions of rustls and aws-lc in
//! Cargo.lock.

use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit =
        git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown commit".into());
    // A new commit moves logs/HEAD; a checkout moves HEAD.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/logs/HEAD");
    }
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let version_of = |name: &str| {
        let marker = format!("name = \"{name}\"\nversion = \"");
        lock.find(&marker)
            .and_then(|at| lock[at + marker.len()..].split('"').next())
            .unwrap_or("?")
            .to_string()
    };
    println!("cargo:rustc-env=HOLDLINE_COMMIT={commit}");
    println!("cargo:rustc-env=HOLDLINE_RUSTLS={}", version_of("rustls"));
    println!(
        "cargo:rustc-env=HOLDLINE_AWS_LC={}",
        version_of("aws-lc-sys")
    );
}
