//! Members whose paths clash, settled as extracting onto disk settles them (FOSSology's
//! ununpack extracts with `tar`, `unzip`, `ar`, ... and then records what is on disk), with a
//! recorded error for every member that ends up without a row:
//!
//! - the same path twice: the later member wins (tar replaces the file);
//! - a file, then a folder (or members under it) of the same name: the folder wins;
//! - a folder with members in it, then a file of the same name: the file is skipped (tar
//!   cannot replace a folder that is not empty); an empty folder is replaced;
//! - a member written through a symbolic link of the archive: skipped (GNU tar creates links
//!   that point outside the tree only at the end, so the member cannot be written through
//!   it; links inside the tree we do not follow either, so a row never names the same
//!   content at two places by accident). The link keeps its row.
//!
//! Members are compared by their path components as the readers produce them.

use crate::engine::{Ctx, Member, Members};
use std::collections::HashMap;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Is {
    File,
    Dir,
    Symlink,
}

struct Entry {
    is: Is,
    /// Index of the member that made it; `None` for folders only implied by paths.
    member: Option<usize>,
    /// Live entries directly inside (folders).
    inside: usize,
}

fn kind(m: &Member) -> Is {
    match m {
        Member::Dir(_) => Is::Dir,
        Member::Symlink(_) => Is::Symlink,
        _ => Is::File,
    }
}

/// Drops the members that would have no row, recording each with the reason.
pub(crate) fn settle(ctx: &Ctx, trail: &str, members: Members) -> Members {
    let mut state: HashMap<Vec<String>, Entry> = HashMap::new();
    let mut dropped = vec![false; members.len()];
    let mut why: Vec<Option<String>> = vec![None; members.len()];
    let parent_of = |p: &[String]| p[..p.len() - 1].to_vec();
    for (i, (_, comps, m)) in members.iter().enumerate() {
        if comps.is_empty() {
            continue;
        }
        let is = kind(m);
        // The folders above it.
        let mut blocked = None;
        for k in 1..comps.len() {
            let prefix = &comps[..k];
            match state.get(prefix).map(|e| (e.is, e.member)) {
                Some((Is::Symlink, _)) => {
                    blocked = Some(format!(
                        "written through the symbolic link {} of the archive; skipped (tar does not write through it either)",
                        prefix.join("/")
                    ));
                    break;
                }
                Some((Is::File, j)) => {
                    // A later member under it turns the file into a folder.
                    if let Some(j) = j {
                        dropped[j] = true;
                        why[j] = Some(format!(
                            "replaced by a folder of the same name (member {} lies in it); this file has no row",
                            comps.join("/")
                        ));
                    }
                    state.insert(
                        prefix.to_vec(),
                        Entry {
                            is: Is::Dir,
                            member: None,
                            inside: 0,
                        },
                    );
                }
                Some((Is::Dir, _)) => {}
                None => {
                    if k > 1 {
                        if let Some(p) = state.get_mut(&comps[..k - 1]) {
                            p.inside += 1;
                        }
                    }
                    state.insert(
                        prefix.to_vec(),
                        Entry {
                            is: Is::Dir,
                            member: None,
                            inside: 0,
                        },
                    );
                }
            }
        }
        if let Some(w) = blocked {
            dropped[i] = true;
            why[i] = Some(w);
            continue;
        }
        let here = state.get(comps).map(|e| (e.is, e.member, e.inside));
        match (here, is) {
            (None, _) => {
                if comps.len() > 1 {
                    if let Some(p) = state.get_mut(&parent_of(comps)) {
                        p.inside += 1;
                    }
                }
            }
            (Some((Is::Dir, _, _)), Is::Dir) => {}
            (Some((Is::Dir, _, inside)), _) if inside > 0 => {
                dropped[i] = true;
                why[i] = Some(
                    "a folder of this name with members in it came earlier; skipped (tar cannot replace it either)"
                        .into(),
                );
                continue;
            }
            (Some((old, j, _)), _) => {
                if let Some(j) = j {
                    dropped[j] = true;
                    why[j] = Some(match (old, is) {
                        (Is::Dir, _) => "an empty folder replaced by a later member of the same name".into(),
                        (_, Is::Dir) => "replaced by a later folder of the same name; this file has no row".into(),
                        _ => "the archive has this path again later; the later member is kept (as tar extraction keeps it), this one has no row".into(),
                    });
                }
            }
        }
        state.insert(
            comps.clone(),
            Entry {
                is,
                member: Some(i),
                inside: 0,
            },
        );
    }
    let mut out = Vec::with_capacity(members.len());
    for (i, m) in members.into_iter().enumerate() {
        if dropped[i] {
            let w = why[i].take().unwrap_or_default();
            ctx.record(trail, Some(&m.1.join("/")), w);
        } else {
            out.push(m);
        }
    }
    out
}
