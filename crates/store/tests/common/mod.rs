//! What the store's tests over a real sshd share.

use holdfast_store::target::{SshOptions, Target};
use holdfast_testkit::sshd::Sshd;

/// A target on the test's sshd at `root`, with its throwaway key and no host-key prompt.
pub fn target(sshd: &Sshd, root: &std::path::Path) -> Target {
    let spec = format!(
        "ssh://{}@127.0.0.1:{}{}",
        Sshd::user(),
        sshd.port,
        root.display()
    );
    let ssh = SshOptions {
        identity: Some(sshd.client_key.clone()),
        options: [
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
        ]
        .iter()
        .flat_map(|o| ["-o".to_string(), o.to_string()])
        .collect(),
    };
    Target::parse(&spec, ssh).unwrap()
}
