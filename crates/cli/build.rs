//! Collects the `///` comment of every field of every struct in the workspace's crates, so
//! `holdfast config init` can print each key with its first sentence: the comments in the
//! code are the one place the configuration is explained.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The first sentence of the first paragraph of a doc comment, on one line.
fn first_sentence(attrs: &[syn::Attribute]) -> String {
    let mut text = String::new();
    for a in attrs {
        if !a.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &a.meta {
            if let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
            {
                let line = s.value();
                if line.trim().is_empty() {
                    if !text.is_empty() {
                        break;
                    }
                    continue;
                }
                text.push(' ');
                text.push_str(line.trim());
            }
        }
    }
    let text = text.trim().to_string();
    let mut end = text.len();
    for (i, _) in text.match_indices(". ") {
        // Not "e.g. " or "i.e. ".
        if !text[..i].ends_with("e.g") && !text[..i].ends_with("i.e") {
            end = i + 1;
            break;
        }
    }
    text[..end].to_string()
}

/// The struct a field's type names (inside Option, Vec, Box), if it is a plain path.
fn type_name(ty: &syn::Type) -> String {
    let syn::Type::Path(p) = ty else {
        return String::new();
    };
    let Some(last) = p.path.segments.last() else {
        return String::new();
    };
    let name = last.ident.to_string();
    if matches!(name.as_str(), "Option" | "Vec" | "Box") {
        if let syn::PathArguments::AngleBracketed(a) = &last.arguments {
            if let Some(syn::GenericArgument::Type(inner)) = a.args.first() {
                return type_name(inner);
            }
        }
    }
    name
}

fn collect(krate: &str, items: &[syn::Item], out: &mut String) {
    for item in items {
        match item {
            syn::Item::Struct(s) => {
                if let syn::Fields::Named(f) = &s.fields {
                    for field in &f.named {
                        let Some(name) = &field.ident else { continue };
                        let _ = writeln!(
                            out,
                            "    ({krate:?}, {:?}, {:?}, {:?}, {:?}),",
                            s.ident.to_string(),
                            name.to_string().trim_start_matches("r#"),
                            type_name(&field.ty),
                            first_sentence(&field.attrs)
                        );
                    }
                }
            }
            syn::Item::Mod(m) => {
                if let Some((_, inner)) = &m.content {
                    collect(krate, inner, out);
                }
            }
            _ => {}
        }
    }
}

fn main() {
    // Read when the script runs, not baked in when it was compiled: a target folder moved
    // to another checkout must not read the old one's sources.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let crates = Path::new(&manifest).join("..");
    let mut out = String::from(
        "/// (crate folder, struct, field, field's type, first sentence of its doc comment)\n\
         pub static FIELDS: &[(&str, &str, &str, &str, &str)] = &[\n",
    );
    let mut dirs: Vec<_> = std::fs::read_dir(&crates)
        .expect("the workspace's crates folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let krate = dir.file_name().unwrap().to_string_lossy().to_string();
        let mut files = Vec::new();
        // (A folder: cargo looks at everything under it.)
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        rs_files(&dir.join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).expect("a source file");
            let Ok(file) = syn::parse_file(&text) else {
                continue; // the compiler reports it
            };
            collect(&krate, &file.items, &mut out);
        }
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("config_docs.rs");
    std::fs::write(dest, out).unwrap();
}
