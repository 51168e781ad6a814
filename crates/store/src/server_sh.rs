//! Runs a backup server's script here, as the server's `sh` would: with the tools this
//! machine has, or as on a server without perl (scripts that prefer perl keep a shell way).

use std::path::Path;
use std::process::{Command, Output};

/// `script` run by `/bin/sh` with `input` on its stdin; `without_perl`: a `PATH` holding only
/// `tools` (links in `bin`, made here), so `command -v perl` finds none.
pub fn run(script: &str, input: &[u8], without_perl: Option<(&Path, &[&str])>) -> Output {
    use std::io::Write;
    let mut sh = Command::new("/bin/sh");
    sh.arg("-c").arg(script);
    if let Some((bin, tools)) = without_perl {
        if !bin.exists() {
            std::fs::create_dir(bin).unwrap();
            for tool in tools {
                let at = Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .output()
                    .unwrap()
                    .stdout;
                let at = String::from_utf8(at).unwrap();
                std::os::unix::fs::symlink(at.trim(), bin.join(tool)).unwrap();
            }
        }
        sh.env("PATH", bin);
    }
    let mut child = sh
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// Whether this machine has perl (the tests' "with perl" half needs it).
pub fn has_perl() -> bool {
    Command::new("perl")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}
