//! A container's members become its folder tree, as the extracting tool would make it.

use super::{Ctx, Member, Members};
use crate::tree::*;
use holdfast_site::mode::REPO_FILE_MODE;
use std::collections::BTreeMap;

#[derive(Default)]
struct TDir {
    mode: Option<u32>,
    dirs: BTreeMap<String, TDir>,
    leaves: BTreeMap<String, Node>,
}

pub(super) fn build_tree(
    ctx: &Ctx,
    trail: &str,
    members: Members,
    dmask: u32,
    fmask: u32,
) -> Vec<Node> {
    let utf8 = ctx.opts.utf8_names();
    let mut root = TDir::default();
    let mut links = Vec::new();
    for (_, comps, m) in members {
        match m {
            Member::Link(t, mode) => links.push((comps, t, mode)),
            other => insert(&mut root, &comps, other, utf8),
        }
    }
    let mut over = false;
    for (comps, target, mode) in links {
        let Some(n) = find(&mut root, &target) else {
            ctx.record(
                trail,
                Some(&comps.join("/")),
                format!(
                    "hard link to {} points outside the archive (not one of its members); skipped",
                    target.join("/")
                ),
            );
            continue;
        };
        // The link itself was counted when read; a copied container's rows were not, and
        // copies of copies grow exponentially with nesting.
        let copied = n.count() as u64 - 1;
        if copied > 0 {
            if let Err(s) = ctx.budget.count_members(copied) {
                if !over {
                    ctx.record(
                        trail,
                        Some(&comps.join("/")),
                        format!(
                            "{s}; this hard link and the later links to containers here are skipped"
                        ),
                    );
                }
                over = true;
                continue;
            }
        }
        let mut link = n.clone();
        link.mode = (n.mode & !0o177777) | mode;
        // ununpack walks a folder last entry first, so it reaches the link before the
        // file it links to, and `fo_RepImport` then chmods their shared inode to 02664:
        // the file the link points to is recorded with that mode.
        n.mode = (n.mode & !0o177777) | (REPO_FILE_MODE & fmask);
        insert(&mut root, &comps, Member::File(link), utf8);
    }
    into_nodes(root, dmask, utf8)
}

fn insert(d: &mut TDir, comps: &[String], m: Member, utf8: bool) {
    let (name, parents) = comps.split_last().expect("non-empty path");
    let mut d = d;
    for p in parents {
        d.leaves.remove(p);
        d = d.dirs.entry(p.clone()).or_default();
    }
    match m {
        Member::Dir(mode) => {
            d.leaves.remove(name);
            d.dirs.entry(name.clone()).or_default().mode = Some(mode);
        }
        Member::File(mut n) => {
            if n.skip {
                return;
            }
            n.name = row_name(name, utf8);
            d.dirs.remove(name);
            d.leaves.insert(name.clone(), n);
        }
        Member::Symlink(mode) => {
            d.dirs.remove(name);
            d.leaves.insert(
                name.clone(),
                Node::plain(&row_name(name, utf8), mode, vec![]),
            );
        }
        Member::Link(..) => {}
    }
}

fn find<'t>(d: &'t mut TDir, comps: &[String]) -> Option<&'t mut Node> {
    let (name, parents) = comps.split_last()?;
    let mut d = d;
    for p in parents {
        d = d.dirs.get_mut(p)?;
    }
    d.leaves.get_mut(name)
}

/// Folders an archive implies but does not list are made by the extracting tool inside a
/// set-group-id folder, so they inherit that bit.
const IMPLIED_DIR_MODE: u32 = S_IFDIR | S_ISGID | 0o755;

fn into_nodes(d: TDir, dmask: u32, utf8: bool) -> Vec<Node> {
    let mut out: Vec<Node> = d.leaves.into_values().collect();
    for (name, sub) in d.dirs {
        let mode = sub.mode.unwrap_or(IMPLIED_DIR_MODE & dmask);
        out.push(Node::dir(
            &row_name(&name, utf8),
            mode,
            into_nodes(sub, dmask, utf8),
        ));
    }
    out
}
