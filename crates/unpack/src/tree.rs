//! The unpacked tree of one upload, shaped as FOSSology's `uploadtree` rows.
//!
//! Every node is a row. Regular files carry a pfile; directories and symbolic links do not
//! (`pfile_fk` 0). A container's children hang under one artifact directory named
//! `artifact.dir` (archives, compressed files, ISO images) or `artifact.unpacked` (RPM payload,
//! Debian source), next to an optional `artifact.meta` file with package metadata. Row order
//! and nested-set numbers follow FOSSology's adj2nest: siblings sorted containers first, then
//! by name; `lft`/`rgt` numbered the way its walk numbers them.

use crate::hash::Hashes;

/// `ufile_mode` bits FOSSology adds to the low `st_mode` bits.
pub const BIT_CONTAINER: u32 = 1 << 29;
pub const BIT_ARTIFACT: u32 = 1 << 28;
pub const BIT_PROJECT: u32 = 1 << 27;
pub const BIT_REPLICA: u32 = 1 << 26;
pub const BIT_PACKAGE: u32 = 1 << 25;
pub const BIT_DIRECTORY: u32 = 1 << 18;
pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;

/// What a row is, from its `ufile_mode` alone (used by repository slimming).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Class {
    /// A folder (from an archive, or an artifact folder): no pfile.
    Directory,
    /// A file with children (archive, compressed file, package): rebuildable from its parent.
    Container,
    /// A file the unpacker made (`artifact.meta`, ...), not a container.
    Artifact,
    /// An ordinary file (or symbolic link).
    Leaf,
}

/// Classifies an `uploadtree.ufile_mode` value.
pub fn classify(ufile_mode: i32) -> Class {
    let m = ufile_mode as u32;
    if m & BIT_DIRECTORY != 0 || m & S_IFMT == S_IFDIR {
        Class::Directory
    } else if m & BIT_CONTAINER != 0 {
        Class::Container
    } else if m & BIT_ARTIFACT != 0 {
        Class::Artifact
    } else {
        Class::Leaf
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    /// Full `ufile_mode`, with FOSSology's bits.
    pub mode: u32,
    pub pfile: Option<Hashes>,
    pub children: Vec<Node>,
    /// A Debian source control file, unpacked with its sibling tarballs.
    pub dsc: bool,
}

impl Node {
    pub fn dir(name: &str, mode: u32, children: Vec<Node>) -> Node {
        Node {
            name: name.to_string(),
            mode: (mode & !S_IFMT) | S_IFDIR | BIT_DIRECTORY | BIT_CONTAINER,
            pfile: None,
            children,
            dsc: false,
        }
    }

    pub fn artifact_dir(name: &str, children: Vec<Node>) -> Node {
        let mut n = Node::dir(name, S_IFDIR, children);
        n.mode |= BIT_ARTIFACT;
        n
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

/// A name as FOSSology stores it: unprintable characters, `/` and `\` become `~`.
pub fn clean_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    s.chars()
        .map(|c| {
            if c.is_control() || c == '/' || c == '\\' || c == '\u{fffd}' {
                '~'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(n: &str) -> Node {
        Node {
            name: n.into(),
            mode: S_IFREG,
            pfile: None,
            children: vec![],
            dsc: false,
        }
    }

    #[test]
    fn nested_set_like_adj2nest() {
        let mut root = Node {
            name: "up.tar".into(),
            mode: S_IFREG | BIT_CONTAINER,
            pfile: None,
            dsc: false,
            children: vec![Node::artifact_dir(
                "artifact.dir",
                vec![
                    leaf("b"),
                    Node::dir("a", S_IFDIR, vec![leaf("x")]),
                    leaf("c"),
                ],
            )],
        };
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
        assert_eq!(clean_name(b"a/b\\c\x01\xff"), "a~b~c~~");
    }
}
