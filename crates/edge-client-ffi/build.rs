//! Generates the C header from `src/lib.rs`: every `#[repr(C)]` struct, every other public
//! struct as an opaque type, and every `extern "C"` function, each with its doc comment.
//! The header is written to `OUT_DIR`; `include/rockit_edge.h` is the checked-in copy, kept
//! equal by a test.

use std::fmt::Write;

fn c_type(t: &str) -> String {
    let t = t.trim();
    if let Some(inner) = t.strip_prefix("*const ") {
        return format!("const {} *", c_type(inner));
    }
    if let Some(inner) = t.strip_prefix("*mut ") {
        return format!("{} *", c_type(inner));
    }
    match t {
        "c_char" => "char",
        "c_int" => "int",
        "u8" => "uint8_t",
        "u32" => "uint32_t",
        "u64" => "uint64_t",
        "i64" => "int64_t",
        other => other,
    }
    .to_string()
}

fn declared(name: &str, ty: &str) -> String {
    let c = c_type(ty);
    if c.ends_with('*') {
        format!("{c}{name}")
    } else {
        format!("{c} {name}")
    }
}

fn comment(doc: &[String], indent: &str) -> String {
    if doc.is_empty() {
        return String::new();
    }
    let mut s = format!("{indent}/**\n");
    for l in doc {
        let l = l.replace("[`", "`").replace("`]", "`");
        if l.is_empty() {
            s.push_str(&format!("{indent} *\n"));
        } else {
            s.push_str(&format!("{indent} * {l}\n"));
        }
    }
    s.push_str(&format!("{indent} */\n"));
    s
}

fn main() {
    println!("cargo:rerun-if-changed=src/lib.rs");
    let src = std::fs::read_to_string("src/lib.rs").expect("src/lib.rs");
    let lines: Vec<&str> = src.lines().collect();
    let mut out = String::from(
        "/* rockit-edge launcher runtime: C interface. Generated from crates/edge-client-ffi/src/lib.rs\n * by its build.rs; do not edit. */\n\
         #ifndef ROCKIT_EDGE_H\n#define ROCKIT_EDGE_H\n\n#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n",
    );
    let (mut doc, mut repr_c, mut i) = (Vec::<String>::new(), false, 0);
    while i < lines.len() {
        let l = lines[i].trim();
        if let Some(d) = l.strip_prefix("///") {
            doc.push(d.strip_prefix(' ').unwrap_or(d).to_string());
        } else if l == "#[repr(C)]" {
            repr_c = true;
        } else if let Some(rest) = l.strip_prefix("pub struct ") {
            let name = rest.trim_end_matches(['{', ';', ' ']).trim();
            out.push_str(&comment(&doc, ""));
            if repr_c {
                let _ = writeln!(out, "typedef struct {name} {{");
                let mut fdoc = Vec::new();
                i += 1;
                while i < lines.len() && lines[i].trim() != "}" {
                    let f = lines[i].trim();
                    if let Some(d) = f.strip_prefix("///") {
                        fdoc.push(d.trim().to_string());
                    } else if let Some((n, t)) =
                        f.strip_prefix("pub ").and_then(|x| x.trim_end_matches(',').split_once(':'))
                    {
                        out.push_str(&comment(&fdoc, "    "));
                        let _ = writeln!(out, "    {};", declared(n.trim(), t));
                        fdoc.clear();
                    }
                    i += 1;
                }
                let _ = writeln!(out, "}} {name};\n");
            } else {
                let _ = writeln!(out, "typedef struct {name} {name};\n");
            }
            doc.clear();
            repr_c = false;
        } else if l.starts_with("pub extern \"C\" fn ")
            || l.starts_with("pub unsafe extern \"C\" fn ")
        {
            let mut sig = String::new();
            while i < lines.len() {
                sig.push_str(lines[i].trim());
                sig.push(' ');
                if lines[i].trim_end().ends_with('{') {
                    break;
                }
                i += 1;
            }
            let after = sig.split("fn ").nth(1).unwrap_or("");
            let (name, rest) = after.split_once('(').unwrap_or((after, ""));
            let close = rest.rfind(')').unwrap_or(rest.len());
            let (params, ret) = (&rest[..close], &rest[close + 1..]);
            let ret = ret
                .trim()
                .trim_end_matches('{')
                .trim()
                .strip_prefix("->")
                .map(str::trim)
                .unwrap_or("void");
            let params: Vec<String> = params
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (n, t) = p.split_once(':').unwrap_or((p, ""));
                    declared(n.trim(), t)
                })
                .collect();
            // The Safety section speaks of Rust; the rest of the comment is for C readers too.
            let keep: Vec<String> =
                doc.iter().take_while(|d| d.as_str() != "# Safety").cloned().collect();
            let keep: Vec<String> = keep
                .into_iter()
                .rev()
                .skip_while(|d| d.is_empty())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            out.push_str(&comment(&keep, ""));
            let params = if params.is_empty() { "void".to_string() } else { params.join(", ") };
            let _ = writeln!(out, "{};\n", declared(&format!("{}({params})", name.trim()), ret));
            doc.clear();
        } else if !l.starts_with("#[") {
            doc.clear();
            repr_c = false;
        }
        i += 1;
    }
    out.push_str("#ifdef __cplusplus\n}\n#endif\n\n#endif /* ROCKIT_EDGE_H */\n");
    let dest =
        std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("rockit_edge.h");
    std::fs::write(dest, out).expect("writing the header");
}
