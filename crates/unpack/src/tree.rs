//! The unpacked tree of one upload, shaped as FOSSology's `uploadtree` rows.
//!
//! Every node is a row. Regular files carry a pfile; directories and symbolic links do not
//! (`pfile_fk` 0). A container's children hang under one artifact directory named
//! `artifact.dir` (archives, compressed files, ISO images) or `artifact.unpacked` (RPM payload,
//! Debian source), next to an optional `artifact.meta` file with package metadata. Row order
//! and nested-set numbers follow FOSSology's adj2nest: siblings sorted containers first, then
//! by name; `lft`/`rgt` numbered the way its walk numbers them.

use crate::hash::Hashes;
pub use holdfast_site::mode::{
    classify, Class, BIT_ARTIFACT, BIT_CONTAINER, BIT_PACKAGE, BIT_PROJECT, BIT_REPLICA, S_IFDIR,
    S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_ISGID,
};

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    /// Full `ufile_mode`, with FOSSology's bits.
    pub mode: u32,
    pub pfile: Option<Hashes>,
    pub children: Vec<Node>,
    /// A Debian source control file, unpacked with its sibling tarballs.
    pub dsc: bool,
    /// The `mimetype` ununpack gives this file's pfile (its command table row), if any.
    pub mime: Option<&'static str>,
    /// ununpack gives this file no row at all (a tar file `tar -t` refuses).
    pub skip: bool,
}

impl Node {
    /// A row without a file: `mode` is the folder's (or link's, pipe's) `st_mode` after its
    /// parent command's mask.
    pub fn plain(name: &str, mode: u32, children: Vec<Node>) -> Node {
        Node {
            name: name.to_string(),
            mode,
            pfile: None,
            children,
            dsc: false,
            mime: None,
            skip: false,
        }
    }

    /// A folder: ununpack marks every folder a container.
    pub fn dir(name: &str, mode: u32, children: Vec<Node>) -> Node {
        Node::plain(name, mode | BIT_CONTAINER, children)
    }

    /// `artifact.dir` / `artifact.unpacked` with the folder's masked `st_mode`.
    pub fn artifact_dir(name: &str, mode: u32, children: Vec<Node>) -> Node {
        Node::plain(name, mode | BIT_CONTAINER | BIT_ARTIFACT, children)
    }

    pub fn is_container(&self) -> bool {
        self.mode & BIT_CONTAINER != 0
    }

    /// Sorts every level the way adj2nest orders siblings.
    pub fn sort(&mut self) {
        self.children.sort_by(|a, b| {
            b.is_container()
                .cmp(&a.is_container())
                .then_with(|| a.name.cmp(&b.name))
        });
        for c in &mut self.children {
            c.sort();
        }
    }

    pub fn count(&self) -> usize {
        1 + self.children.iter().map(Node::count).sum::<usize>()
    }

    /// Visits nodes in pre-order with their parent index.
    pub fn walk<'a>(&'a self, out: &mut Vec<Flat<'a>>, parent: Option<usize>, set: &mut i64) {
        let me = out.len();
        let realparent = parent.map(|p| {
            // The nearest ancestor that is not an artifact.
            let mut q = p;
            while out[q].node.mode & BIT_ARTIFACT != 0 {
                match out[q].parent {
                    Some(pp) => q = pp,
                    None => break,
                }
            }
            q
        });
        out.push(Flat {
            node: self,
            parent,
            realparent,
            lft: *set,
            rgt: 0,
        });
        *set += 1;
        if !self.children.is_empty() {
            for (i, c) in self.children.iter().enumerate() {
                if i > 0 {
                    *set += 1;
                }
                c.walk(out, Some(me), set);
            }
            *set += 1;
        }
        out[me].rgt = *set;
    }

    /// Every node in pre-order with parent indexes and nested-set numbers (after [`sort`]).
    pub fn flatten(&self) -> Vec<Flat<'_>> {
        let mut out = Vec::with_capacity(self.count());
        let mut set = 1;
        self.walk(&mut out, None, &mut set);
        out
    }

    /// All pfiles of the tree (files, containers, artifacts).
    pub fn pfiles<'a>(&'a self, out: &mut Vec<&'a Hashes>) {
        if let Some(h) = &self.pfile {
            out.push(h);
        }
        for c in &self.children {
            c.pfiles(out);
        }
    }
}

pub struct Flat<'a> {
    pub node: &'a Node,
    pub parent: Option<usize>,
    pub realparent: Option<usize>,
    pub lft: i64,
    pub rgt: i64,
}

/// A name as FOSSology stores it (see [`holdfast_site::naming::ufile_name`]); member
/// paths are carried as one char per raw byte (see [`raw_comp`]) until they become rows.
pub fn row_name(comp: &str, utf8_client: bool) -> String {
    holdfast_site::naming::ufile_name(&comp_bytes(comp), utf8_client)
}

/// A raw name component as a `String` that keeps every byte (one char U+0000..U+00FF per
/// byte), so that names differing only in bytes FOSSology turns into `~` stay apart.
pub fn raw_comp(raw: &[u8]) -> String {
    raw.iter().map(|&b| b as char).collect()
}

/// The bytes of a [`raw_comp`] string.
pub fn comp_bytes(comp: &str) -> Vec<u8> {
    comp.chars().map(|c| c as u32 as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(n: &str) -> Node {
        Node::plain(n, S_IFREG, vec![])
    }

    #[test]
    fn nested_set_like_adj2nest() {
        let mut root = Node::plain(
            "up.tar",
            S_IFREG | BIT_CONTAINER,
            vec![Node::artifact_dir(
                "artifact.dir",
                S_IFDIR | S_ISGID,
                vec![
                    leaf("b"),
                    Node::dir("a", S_IFDIR, vec![leaf("x")]),
                    leaf("c"),
                ],
            )],
        );
        root.sort();
        let flat = root.flatten();
        let names: Vec<_> = flat.iter().map(|f| f.node.name.as_str()).collect();
        assert_eq!(names, ["up.tar", "artifact.dir", "a", "x", "b", "c"]);
        for f in &flat {
            assert!(f.lft < f.rgt);
            if let Some(p) = f.parent {
                assert!(flat[p].lft < f.lft && f.rgt < flat[p].rgt);
            }
        }
        // Children of the artifact folder point their realparent at the container.
        assert_eq!(flat[2].realparent, Some(0));
        assert_eq!(flat[3].realparent, Some(2));
        assert_eq!(classify(flat[1].node.mode as i32), Class::Directory);
        assert_eq!(classify(flat[0].node.mode as i32), Class::Container);
        assert_eq!(classify((S_IFREG | BIT_ARTIFACT) as i32), Class::Artifact);
        assert_eq!(classify(S_IFREG as i32), Class::Leaf);
        assert_eq!(row_name(&raw_comp(b"a\\c\x01\xff"), false), "a~c~~");
        assert_eq!(row_name(&raw_comp(b"a\xff"), true), "");
        assert_eq!(comp_bytes(&raw_comp(b"\xe9x")), b"\xe9x");
    }
}
