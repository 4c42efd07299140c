//! The Rust code generator: definitions in, one Rust source string out.
//!
//! What it emits, for a schema included at `config.root`:
//!
//! - `types::…`: one struct per constructor, with `Identifiable`, `Serializable`,
//!   `Deserializable` (boxed: id then fields) and their bare forms (fields only);
//! - `enums::…`: one enum per boxed type, a variant per constructor holding its struct;
//! - `functions::…`: one struct per function, with `RemoteCall` naming its return type;
//! - `name_for_id`, and behind the testing feature: a value generator for every item,
//!   `round_trip_every_type` and `decode_reencode` (the fuzz entry point).
//!
//! Conventions that the runtime (`config.runtime`) must provide: the traits `Serializable`,
//! `Deserializable`, `BareSerializable`, `BareDeserializable`, `Identifiable`, `RemoteCall`,
//! the types `Reader`, `DecodeError`, `BufMut`, `RawObject`, the helpers `write_u32`,
//! `read_u32`, `write_count`, `read_vector_header`, `prealloc`, and the `testing` module.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::parse::{Category, Definition, ParamType, TypeRef};

/// How to generate code for one schema.
#[derive(Clone, Debug)]
pub struct Config {
    /// Rust path of the module that includes the generated code (`crate::tl::api`).
    pub root: String,
    /// Rust path of the runtime traits and helpers (`crate::tl`).
    pub runtime: String,
    /// Full TL names (`msg_container`) of definitions written by hand instead.
    pub skip: Vec<String>,
    /// The cargo feature that gates value generators and round-trip drivers.
    pub testing_feature: String,
}

/// A schema that parses but cannot be turned into Rust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerateError(pub String);

impl std::fmt::Display for GenerateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GenerateError {}

fn err<T>(message: impl Into<String>) -> Result<T, GenerateError> {
    Err(GenerateError(message.into()))
}

/// Constructors every TL codec treats as primitives rather than as generated types.
const BUILTIN_CONSTRUCTORS: &[&str] = &["boolFalse", "boolTrue", "true", "vector"];

/// What a type reference resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Long,
    Double,
    Int128,
    Int256,
    String,
    Bytes,
    Bool,
    True,
    Vector {
        boxed: bool,
        item: Box<Self>,
    },
    Generic(String),
    /// A boxed type, by full TL type name.
    Boxed(String),
    /// A bare constructor, by index into the constructor list.
    Bare(usize),
}

impl Kind {
    /// Whether the Rust type of this kind implements `Default` (numbers, strings, byte
    /// arrays, `bool`, vectors; not enums, bare constructors or generics).
    fn has_default(&self) -> bool {
        match self {
            Self::Int
            | Self::Long
            | Self::Double
            | Self::Int128
            | Self::Int256
            | Self::String
            | Self::Bytes
            | Self::Bool
            | Self::True
            | Self::Vector { .. } => true,
            Self::Generic(_) | Self::Boxed(_) | Self::Bare(_) => false,
        }
    }

    /// Whether the runtime's trait impls (primitives, `Vec<T>` as a boxed vector, enums,
    /// generics) serialize this kind exactly as the schema says.
    fn via_traits(&self) -> bool {
        match self {
            Self::Vector { boxed, item } => *boxed && item.via_traits(),
            Self::Bare(_) | Self::True => false,
            _ => true,
        }
    }
}

struct Model<'a> {
    config: &'a Config,
    /// Generated constructors (types), in schema order.
    ctors: Vec<&'a Definition>,
    /// Generated functions, in schema order.
    funcs: Vec<&'a Definition>,
    /// Boxed type full name -> indices into `ctors`.
    type_ctors: BTreeMap<String, Vec<usize>>,
    /// Constructor full name -> index into `ctors`.
    ctor_by_name: HashMap<String, usize>,
    /// Boxed types that can contain themselves without a vector in between.
    recursive_edges: BTreeSet<(String, String)>,
    /// Boxed type -> the constructor index (into its list) that ends recursion soonest.
    leaf_ctor: HashMap<String, usize>,
    /// Constructors (indices into `ctors`) held in a `Box` by their enum's variant.
    boxed_variants: BTreeSet<usize>,
}

/// Constructors estimated larger than this many bytes in memory are boxed inside their enum
/// variant, so that enums stay small to move (decoding moves values through `Result`s and
/// into vectors; an unboxed `Message` would be 2.5 KB and an `Update` 5 KB).
const VARIANT_BOX_THRESHOLD: usize = 128;

/// Generates the Rust code for a parsed schema.
pub fn generate(defs: &[Definition], config: &Config) -> Result<String, GenerateError> {
    let model = Model::new(defs, config)?;
    model.emit()
}

fn type_full_name(t: &TypeRef) -> String {
    match &t.namespace {
        Some(ns) => format!("{ns}.{}", t.name),
        None => t.name.clone(),
    }
}

/// `p_q_inner_data` -> `PQInnerData`, `inputPeerUser` -> `InputPeerUser`.
fn pascal(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "else", "enum", "extern", "false", "fn", "for", "if",
    "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "static",
    "struct", "trait", "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn",
    "abstract", "become", "box", "do", "final", "macro", "override", "priv", "typeof", "unsized",
    "virtual", "yield", "try", "gen",
];

/// A field name as a Rust identifier: lower case, keywords escaped.
fn field_ident(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if matches!(lower.as_str(), "self" | "super" | "crate") {
        format!("{lower}_")
    } else if KEYWORDS.contains(&lower.as_str()) {
        format!("r#{lower}")
    } else {
        lower
    }
}

/// A local variable name for a field (never a raw identifier).
fn local_ident(name: &str) -> String {
    format!("f_{}", name.to_ascii_lowercase())
}

fn module_path(namespace: &Option<String>) -> String {
    match namespace {
        Some(ns) => format!("{ns}::"),
        None => String::new(),
    }
}

fn doc_line(text: &str) -> String {
    format!("/// `{}`\n", text.replace('`', "'"))
}

impl<'a> Model<'a> {
    fn new(defs: &'a [Definition], config: &'a Config) -> Result<Self, GenerateError> {
        let mut ctors = Vec::new();
        let mut funcs = Vec::new();
        let mut ids: HashMap<u32, String> = HashMap::new();
        for def in defs {
            let full = def.full_name();
            if config.skip.contains(&full) || BUILTIN_CONSTRUCTORS.contains(&full.as_str()) {
                continue;
            }
            let Some(id) = def.id else {
                return err(format!("`{full}` has no constructor id and is not skipped"));
            };
            if let Some(previous) = ids.insert(id, full.clone()) {
                return err(format!(
                    "constructor id {id:08x} used by `{previous}` and `{full}`"
                ));
            }
            match def.category {
                Category::Type => {
                    if !def.generics.is_empty() {
                        return err(format!("generic constructor `{full}` is not supported"));
                    }
                    ctors.push(def);
                }
                Category::Function => funcs.push(def),
            }
        }
        let mut type_ctors: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut ctor_by_name = HashMap::new();
        for (index, def) in ctors.iter().enumerate() {
            type_ctors
                .entry(type_full_name(&def.ty))
                .or_default()
                .push(index);
            ctor_by_name.insert(def.full_name(), index);
        }
        let mut model = Self {
            config,
            ctors,
            funcs,
            type_ctors,
            ctor_by_name,
            recursive_edges: BTreeSet::new(),
            leaf_ctor: HashMap::new(),
            boxed_variants: BTreeSet::new(),
        };
        model.check_names()?;
        model.analyse_recursion()?;
        model.analyse_leaves()?;
        model.analyse_sizes()?;
        Ok(model)
    }

    fn check_names(&self) -> Result<(), GenerateError> {
        let mut seen = BTreeSet::new();
        for def in self.ctors.iter().chain(self.funcs.iter()) {
            let module = if def.category == Category::Type {
                "types"
            } else {
                "functions"
            };
            let key = (module, def.namespace.clone(), pascal(&def.name));
            if !seen.insert(key) {
                return err(format!(
                    "two definitions map to the Rust name of `{}`",
                    def.full_name()
                ));
            }
            let mut fields = BTreeSet::new();
            for p in &def.params {
                if !fields.insert(field_ident(&p.name)) {
                    return err(format!(
                        "duplicate field `{}` in `{}`",
                        p.name,
                        def.full_name()
                    ));
                }
            }
        }
        Ok(())
    }

    fn resolve(&self, t: &TypeRef, generics: &[String]) -> Result<Kind, GenerateError> {
        if t.namespace.is_none() && generics.contains(&t.name) {
            return Ok(Kind::Generic(t.name.clone()));
        }
        if t.generic_ref {
            return err(format!("`!{}` does not name a generic parameter", t.name));
        }
        if let Some(arg) = &t.arg {
            let boxed = match t.name.as_str() {
                "Vector" => true,
                "vector" => false,
                other => return err(format!("type `{other}` takes no argument")),
            };
            return Ok(Kind::Vector {
                boxed,
                item: Box::new(self.resolve(arg, generics)?),
            });
        }
        if t.namespace.is_none() {
            let primitive = match t.name.as_str() {
                "int" => Some(Kind::Int),
                "long" => Some(Kind::Long),
                "double" => Some(Kind::Double),
                "int128" => Some(Kind::Int128),
                "int256" => Some(Kind::Int256),
                "string" => Some(Kind::String),
                "bytes" => Some(Kind::Bytes),
                "Bool" => Some(Kind::Bool),
                "true" => Some(Kind::True),
                _ => None,
            };
            if let Some(kind) = primitive {
                return Ok(kind);
            }
        }
        let full = type_full_name(t);
        let first_lower = t
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase());
        if first_lower {
            return match self.ctor_by_name.get(&full) {
                Some(&index) => Ok(Kind::Bare(index)),
                None => err(format!("unknown bare constructor `{full}`")),
            };
        }
        match self.type_ctors.get(&full) {
            Some(list) if t.bare => match list.as_slice() {
                [only] => Ok(Kind::Bare(*only)),
                _ => err(format!("`%{full}` needs exactly one constructor")),
            },
            Some(_) => Ok(Kind::Boxed(full)),
            None => err(format!("unknown type `{full}`")),
        }
    }

    /// The boxed type a field's kind points to directly (not through a vector).
    fn direct_type(&self, kind: &Kind) -> Option<String> {
        match kind {
            Kind::Boxed(name) => Some(name.clone()),
            Kind::Bare(index) => self.ctors.get(*index).map(|d| type_full_name(&d.ty)),
            _ => None,
        }
    }

    fn field_kinds(&self, def: &Definition) -> Result<Vec<Option<Kind>>, GenerateError> {
        def.params
            .iter()
            .map(|p| match &p.ty {
                ParamType::Flags => Ok(None),
                ParamType::Normal { ty, .. } => self.resolve(ty, &def.generics).map(Some),
            })
            .collect()
    }

    /// Finds the fields that must be boxed: a field of type U inside type T is boxed when U
    /// can reach T through direct (non-vector) containment, or Rust could not size T.
    fn analyse_recursion(&mut self) -> Result<(), GenerateError> {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for def in &self.ctors {
            let from = type_full_name(&def.ty);
            for kind in self.field_kinds(def)?.into_iter().flatten() {
                if let Some(to) = self.direct_type(&kind) {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
        }
        let reaches = |start: &str, goal: &str| -> bool {
            let mut stack = vec![start.to_owned()];
            let mut seen = BTreeSet::new();
            while let Some(node) = stack.pop() {
                if node == goal {
                    return true;
                }
                if !seen.insert(node.clone()) {
                    continue;
                }
                if let Some(next) = edges.get(&node) {
                    stack.extend(next.iter().cloned());
                }
            }
            false
        };
        let mut boxed = BTreeSet::new();
        for (from, tos) in &edges {
            for to in tos {
                if reaches(to, from) {
                    boxed.insert((from.clone(), to.clone()));
                }
            }
        }
        self.recursive_edges = boxed;
        Ok(())
    }

    /// For each boxed type, the constructor whose required fields end nesting soonest; the
    /// value generator picks it once it is deep enough, so generation always terminates.
    fn analyse_leaves(&mut self) -> Result<(), GenerateError> {
        const INF: u32 = u32::MAX;
        let mut height: BTreeMap<String, u32> =
            self.type_ctors.keys().map(|k| (k.clone(), INF)).collect();
        let mut required: Vec<Vec<String>> = Vec::with_capacity(self.ctors.len());
        for def in &self.ctors {
            let mut list = Vec::new();
            for (param, kind) in def.params.iter().zip(self.field_kinds(def)?) {
                let optional = matches!(&param.ty, ParamType::Normal { flag: Some(_), .. });
                if let (false, Some(kind)) = (optional, kind) {
                    if let Some(t) = self.direct_type(&kind) {
                        list.push(t);
                    }
                }
            }
            required.push(list);
        }
        let ctor_height = |index: usize, height: &BTreeMap<String, u32>| -> u32 {
            let mut h = 1u32;
            for t in required.get(index).into_iter().flatten() {
                let inner = height.get(t).copied().unwrap_or(INF);
                if inner == INF {
                    return INF;
                }
                h = h.max(inner.saturating_add(1));
            }
            h
        };
        loop {
            let mut changed = false;
            for (name, list) in &self.type_ctors {
                let best = list
                    .iter()
                    .map(|&i| ctor_height(i, &height))
                    .min()
                    .unwrap_or(INF);
                if height.get(name).copied() != Some(best) {
                    height.insert(name.clone(), best);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        for (name, list) in &self.type_ctors {
            let mut best = (INF, 0usize);
            for (position, &i) in list.iter().enumerate() {
                let h = ctor_height(i, &height);
                if h < best.0 {
                    best = (h, position);
                }
            }
            if best.0 == INF {
                return err(format!("type `{name}` has no finite value"));
            }
            self.leaf_ctor.insert(name.clone(), best.1);
        }
        Ok(())
    }

    /// Estimates in-memory sizes and picks the variants to box. A monotone fixpoint: sizes
    /// start at zero and only grow, and every enum is bounded by a tag plus the threshold
    /// (larger variants count as a pointer), so it converges.
    fn analyse_sizes(&mut self) -> Result<(), GenerateError> {
        let mut struct_size = vec![0usize; self.ctors.len()];
        let mut enum_size: HashMap<String, usize> =
            self.type_ctors.keys().map(|k| (k.clone(), 8)).collect();
        let mut fields: Vec<Vec<(Kind, bool)>> = Vec::with_capacity(self.ctors.len());
        for def in &self.ctors {
            let kinds = self.field_kinds(def)?;
            let list = def
                .params
                .iter()
                .zip(kinds)
                .filter_map(|(p, kind)| {
                    let optional = matches!(&p.ty, ParamType::Normal { flag: Some(_), .. });
                    kind.map(|k| (k, optional))
                })
                .collect();
            fields.push(list);
        }
        for _round in 0..64 {
            let mut changed = false;
            for (index, def) in self.ctors.iter().enumerate() {
                let owner = type_full_name(&def.ty);
                let mut total = 0usize;
                for (kind, optional) in fields.get(index).into_iter().flatten() {
                    let inline = match kind {
                        Kind::Int => 4,
                        Kind::Long | Kind::Double => 8,
                        Kind::Int128 => 16,
                        Kind::Int256 => 32,
                        Kind::Bool | Kind::True => 1,
                        Kind::String | Kind::Bytes | Kind::Vector { .. } | Kind::Generic(_) => 24,
                        Kind::Boxed(t)
                            if self.recursive_edges.contains(&(owner.clone(), t.clone())) =>
                        {
                            8
                        }
                        Kind::Boxed(t) => enum_size.get(t).copied().unwrap_or(8),
                        Kind::Bare(c) => match self.ctors.get(*c) {
                            Some(d)
                                if self
                                    .recursive_edges
                                    .contains(&(owner.clone(), type_full_name(&d.ty))) =>
                            {
                                8
                            }
                            _ => struct_size.get(*c).copied().unwrap_or(0),
                        },
                    };
                    total += inline + if *optional { 8 } else { 0 };
                }
                if let Some(slot) = struct_size.get_mut(index) {
                    if *slot != total {
                        *slot = total;
                        changed = true;
                    }
                }
            }
            for (name, list) in &self.type_ctors {
                let payload = list
                    .iter()
                    .map(|&i| struct_size.get(i).copied().unwrap_or(0))
                    .map(|size| {
                        if size > VARIANT_BOX_THRESHOLD {
                            8
                        } else {
                            size
                        }
                    })
                    .max()
                    .unwrap_or(0);
                let size = 8 + payload;
                if enum_size.get(name).copied() != Some(size) {
                    enum_size.insert(name.clone(), size);
                    changed = true;
                }
            }
            if !changed {
                self.boxed_variants = (0..self.ctors.len())
                    .filter(|&i| struct_size.get(i).copied().unwrap_or(0) > VARIANT_BOX_THRESHOLD)
                    .collect();
                return Ok(());
            }
        }
        err("size estimation did not converge")
    }

    /// `<RawObject, ...>` for a generic function's parameters (empty when it has none): the
    /// instantiation used by the round-trip drivers, since `!X` may be any object.
    fn raw_generic_args(&self, def: &Definition) -> String {
        if def.generics.is_empty() {
            return String::new();
        }
        let raw = format!("{}::RawObject", self.rt());
        format!("<{}>", vec![raw; def.generics.len()].join(", "))
    }

    fn rt(&self) -> &str {
        &self.config.runtime
    }

    fn enum_path(&self, full: &str) -> String {
        let (ns, name) = match full.rsplit_once('.') {
            Some((ns, name)) => (format!("{ns}::"), name),
            None => (String::new(), full),
        };
        format!("{}::enums::{ns}{}", self.config.root, pascal(name))
    }

    fn struct_path(&self, def: &Definition) -> String {
        let module = if def.category == Category::Type {
            "types"
        } else {
            "functions"
        };
        format!(
            "{}::{module}::{}{}",
            self.config.root,
            module_path(&def.namespace),
            pascal(&def.name)
        )
    }

    fn rust_type(&self, kind: &Kind, owner: &str) -> String {
        let boxed_if = |target: String, path: String| -> String {
            if self.recursive_edges.contains(&(owner.to_owned(), target)) {
                format!("::std::boxed::Box<{path}>")
            } else {
                path
            }
        };
        match kind {
            Kind::Int => "i32".into(),
            Kind::Long => "i64".into(),
            Kind::Double => "f64".into(),
            Kind::Int128 => "[u8; 16]".into(),
            Kind::Int256 => "[u8; 32]".into(),
            Kind::String => "::std::string::String".into(),
            Kind::Bytes => "::std::vec::Vec<u8>".into(),
            Kind::Bool | Kind::True => "bool".into(),
            Kind::Vector { item, .. } => {
                format!("::std::vec::Vec<{}>", self.rust_type(item, "<vector item>"))
            }
            Kind::Generic(name) => name.clone(),
            Kind::Boxed(full) => boxed_if(full.clone(), self.enum_path(full)),
            Kind::Bare(index) => match self.ctors.get(*index) {
                Some(def) => boxed_if(type_full_name(&def.ty), self.struct_path(def)),
                None => "()".into(),
            },
        }
    }

    fn min_size(&self, kind: &Kind, depth: u32) -> usize {
        match kind {
            Kind::Int | Kind::Bool | Kind::String | Kind::Bytes | Kind::Boxed(_) => 4,
            Kind::Long | Kind::Double => 8,
            Kind::Int128 => 16,
            Kind::Int256 => 32,
            Kind::True | Kind::Generic(_) => 0,
            Kind::Vector { boxed, .. } => {
                if *boxed {
                    8
                } else {
                    4
                }
            }
            Kind::Bare(index) => match self.ctors.get(*index) {
                Some(def) if depth < 8 => self.bare_min_size(def, depth + 1),
                _ => 0,
            },
        }
    }

    fn bare_min_size(&self, def: &Definition, depth: u32) -> usize {
        let mut total = 0;
        for p in &def.params {
            match &p.ty {
                ParamType::Flags => total += 4,
                ParamType::Normal { flag: Some(_), .. } => {}
                ParamType::Normal { ty, flag: None } => {
                    if let Ok(kind) = self.resolve(ty, &def.generics) {
                        total += self.min_size(&kind, depth);
                    }
                }
            }
        }
        total
    }

    /// Statements that write `expr` (an expression of type `&T`) into `buf`.
    fn ser(&self, kind: &Kind, expr: &str) -> String {
        let rt = self.rt();
        if kind.via_traits() {
            return format!("{rt}::Serializable::serialize({expr}, buf);");
        }
        match kind {
            Kind::Bare(_) => format!("{rt}::BareSerializable::serialize_bare({expr}, buf);"),
            Kind::Vector { boxed, item } => {
                let header = if *boxed {
                    format!("{rt}::write_u32(buf, {rt}::VECTOR_ID); ")
                } else {
                    String::new()
                };
                format!(
                    "{{ {header}{rt}::write_count(buf, ({expr}).len()); for item in ({expr}).iter() {{ {} }} }}",
                    self.ser(item, "item")
                )
            }
            // `true` carries no bytes: its flag bit is the whole value.
            _ => String::new(),
        }
    }

    /// An expression that reads a value of `kind` from `r`, with `?` on errors.
    fn de(&self, kind: &Kind) -> String {
        let rt = self.rt();
        if kind.via_traits() {
            return format!("{rt}::Deserializable::deserialize(r)?");
        }
        match kind {
            Kind::Bare(_) => format!("{rt}::BareDeserializable::deserialize_bare(r)?"),
            Kind::Vector { boxed, item } => format!(
                "{{ let n = {rt}::read_vector_header(r, {boxed}, {min})?; \
                 let mut v = ::std::vec::Vec::with_capacity({rt}::prealloc(n)); \
                 for _ in 0..n {{ v.push({inner}); }} v }}",
                min = self.min_size(item, 0),
                inner = self.de(item)
            ),
            _ => "true".into(),
        }
    }

    fn generics_decl(def: &Definition, bound: &str) -> (String, String) {
        if def.generics.is_empty() {
            return (String::new(), String::new());
        }
        let decl = def
            .generics
            .iter()
            .map(|g| format!("{g}: {bound}"))
            .collect::<Vec<_>>();
        let uses = def.generics.clone();
        (
            format!("<{}>", decl.join(", ")),
            format!("<{}>", uses.join(", ")),
        )
    }

    /// Flag groups: (flags field, bit) -> names of the fields sharing that bit.
    fn flag_groups(def: &Definition) -> BTreeMap<(String, u32), Vec<(String, bool)>> {
        let mut groups: BTreeMap<(String, u32), Vec<(String, bool)>> = BTreeMap::new();
        for p in &def.params {
            if let ParamType::Normal {
                ty,
                flag: Some(flag),
            } = &p.ty
            {
                let is_true = ty.name == "true" && ty.namespace.is_none();
                groups
                    .entry((flag.field.clone(), flag.bit))
                    .or_default()
                    .push((p.name.clone(), is_true));
            }
        }
        groups
    }

    fn emit_struct(&self, def: &Definition, out: &mut String) -> Result<(), GenerateError> {
        let rt = self.rt();
        let name = pascal(&def.name);
        let owner = type_full_name(&def.ty);
        let owner = if def.category == Category::Type {
            owner
        } else {
            format!("<function {}>", def.full_name())
        };
        let kinds = self.field_kinds(def)?;
        let id = def.id.unwrap_or(0);
        let groups = Self::flag_groups(def);
        let uses = if def.generics.is_empty() {
            String::new()
        } else {
            format!("<{}>", def.generics.join(", "))
        };
        let plain_decl = &uses;

        // The struct.
        out.push_str(&doc_line(&def.source));
        if def.params.iter().any(|p| matches!(p.ty, ParamType::Flags)) {
            out.push_str("///\n/// Flag fields (`#`) are computed on encoding. Fields that share a flag bit are\n/// encoded only together: if any of them is absent, none is sent.\n");
        }
        // `Default` where every field has one (absent flags, zero numbers, empty strings and
        // vectors), so that large constructors can be written with `..Default::default()`.
        let defaultable = def.generics.is_empty()
            && def
                .params
                .iter()
                .zip(&kinds)
                .all(|(p, kind)| match (&p.ty, kind) {
                    (_, None) | (ParamType::Normal { flag: Some(_), .. }, _) => true,
                    (_, Some(kind)) => kind.has_default(),
                });
        if defaultable {
            out.push_str("#[derive(Clone, Debug, PartialEq, Default)]\n");
        } else {
            out.push_str("#[derive(Clone, Debug, PartialEq)]\n");
        }
        let _ = writeln!(out, "pub struct {name}{plain_decl} {{");
        for (p, kind) in def.params.iter().zip(&kinds) {
            let Some(kind) = kind else { continue };
            let ty = self.rust_type(kind, &owner);
            let ty = match &p.ty {
                ParamType::Normal { flag: Some(_), .. } if *kind == Kind::True => "bool".to_owned(),
                ParamType::Normal { flag: Some(_), .. } => format!("::std::option::Option<{ty}>"),
                _ => ty,
            };
            let source = match &p.ty {
                ParamType::Normal {
                    ty: t,
                    flag: Some(f),
                } => {
                    format!("{}:{}.{}?{}", p.name, f.field, f.bit, tl_type_text(t))
                }
                ParamType::Normal { ty: t, flag: None } => {
                    format!("{}:{}", p.name, tl_type_text(t))
                }
                ParamType::Flags => String::new(),
            };
            out.push_str(&doc_line(&source));
            let _ = writeln!(out, "    pub {}: {ty},", field_ident(&p.name));
        }
        out.push_str("}\n");

        // A constructor for the structs that cannot derive `Default`: the fields without a
        // flag are its arguments, in schema order; every flag field starts absent (false
        // for `true` flags), so that `Message::new(id, peer_id, date, message)` is a whole
        // message.
        if !defaultable && def.generics.is_empty() {
            let mut args = Vec::new();
            let mut inits = Vec::new();
            for (p, kind) in def.params.iter().zip(&kinds) {
                let Some(kind) = kind else { continue };
                let field = field_ident(&p.name);
                match &p.ty {
                    ParamType::Normal { flag: Some(_), .. } if *kind == Kind::True => {
                        inits.push(format!("{field}: false"));
                    }
                    ParamType::Normal { flag: Some(_), .. } => {
                        inits.push(format!("{field}: ::std::option::Option::None"));
                    }
                    _ => {
                        args.push(format!("{field}: {}", self.rust_type(kind, &owner)));
                        inits.push(field.clone());
                    }
                }
            }
            let _ = writeln!(
                out,
                "impl {name} {{\n    /// A value with these fields and every flag field absent.\n    #[allow(clippy::too_many_arguments)]\n    pub fn new({}) -> Self {{ Self {{ {} }} }}\n}}",
                args.join(", "),
                inits.join(", ")
            );
        }

        // Identifiable.
        let _ = writeln!(
            out,
            "impl{plain_decl} {rt}::Identifiable for {name}{uses} {{ const CONSTRUCTOR_ID: u32 = 0x{id:08x}; const TL_NAME: &'static str = \"{}\"; }}",
            def.full_name()
        );

        // Serialization.
        let (ser_decl, _) = Self::generics_decl(def, &format!("{rt}::Serializable"));
        let _ = writeln!(
            out,
            "impl{ser_decl} {rt}::BareSerializable for {name}{uses} {{"
        );
        let _ = writeln!(
            out,
            "    fn serialize_bare<B: {rt}::BufMut>(&self, buf: &mut B) {{"
        );
        for p in &def.params {
            if let ParamType::Flags = p.ty {
                let var = format!("flags_{}", p.name.to_ascii_lowercase());
                let used = groups.keys().any(|(field, _)| field == &p.name);
                let _ = writeln!(
                    out,
                    "        let {}{var}: u32 = 0;",
                    if used { "mut " } else { "" }
                );
                for ((field, bit), members) in &groups {
                    if field != &p.name {
                        continue;
                    }
                    let cond = members
                        .iter()
                        .map(|(m, is_true)| {
                            if *is_true {
                                format!("self.{}", field_ident(m))
                            } else {
                                format!("self.{}.is_some()", field_ident(m))
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" && ");
                    let _ = writeln!(out, "        if {cond} {{ {var} |= 1 << {bit}; }}");
                }
            }
        }
        for (p, kind) in def.params.iter().zip(&kinds) {
            match (&p.ty, kind) {
                (ParamType::Flags, _) => {
                    let _ = writeln!(
                        out,
                        "        {rt}::write_u32(buf, flags_{});",
                        p.name.to_ascii_lowercase()
                    );
                }
                (ParamType::Normal { flag: None, .. }, Some(kind)) => {
                    let _ = writeln!(
                        out,
                        "        {}",
                        self.ser(kind, &format!("&self.{}", field_ident(&p.name)))
                    );
                }
                (ParamType::Normal { flag: Some(f), .. }, Some(kind)) if *kind != Kind::True => {
                    let _ = writeln!(
                        out,
                        "        if flags_{} & (1 << {}) != 0 {{ if let ::std::option::Option::Some(value) = &self.{} {{ {} }} }}",
                        f.field.to_ascii_lowercase(),
                        f.bit,
                        field_ident(&p.name),
                        self.ser(kind, "value")
                    );
                }
                _ => {}
            }
        }
        out.push_str("    }\n}\n");
        let _ = writeln!(
            out,
            "impl{ser_decl} {rt}::Serializable for {name}{uses} {{ fn serialize<B: {rt}::BufMut>(&self, buf: &mut B) {{ {rt}::write_u32(buf, 0x{id:08x}); {rt}::BareSerializable::serialize_bare(self, buf); }} }}"
        );

        // Deserialization.
        let (de_decl, _) = Self::generics_decl(def, &format!("{rt}::Deserializable"));
        let _ = writeln!(
            out,
            "impl{de_decl} {rt}::BareDeserializable for {name}{uses} {{"
        );
        let _ = writeln!(
            out,
            "    const MIN_BARE_SIZE: usize = {};",
            self.bare_min_size(def, 0)
        );
        let _ = writeln!(
            out,
            "    fn deserialize_bare(r: &mut {rt}::Reader<'_>) -> ::std::result::Result<Self, {rt}::DecodeError> {{"
        );
        for (p, kind) in def.params.iter().zip(&kinds) {
            match (&p.ty, kind) {
                (ParamType::Flags, _) => {
                    let var = format!("flags_{}", p.name.to_ascii_lowercase());
                    let known: u32 = groups
                        .keys()
                        .filter(|(field, _)| field == &p.name)
                        .fold(0u32, |acc, (_, bit)| acc | (1u32 << bit));
                    let _ = writeln!(
                        out,
                        "        let {var} = {rt}::read_u32(r)?; if {var} & !0x{known:08x} != 0 {{ return ::std::result::Result::Err({rt}::DecodeError::UnknownFlags {{ type_name: \"{}\", flags: {var} }}); }}",
                        def.full_name()
                    );
                }
                (ParamType::Normal { flag: None, .. }, Some(kind)) => {
                    let _ = writeln!(
                        out,
                        "        let {}: {} = {};",
                        local_ident(&p.name),
                        self.rust_type(kind, &owner),
                        self.de(kind)
                    );
                }
                (ParamType::Normal { flag: Some(f), .. }, Some(kind)) => {
                    let test = format!(
                        "flags_{} & (1 << {}) != 0",
                        f.field.to_ascii_lowercase(),
                        f.bit
                    );
                    if *kind == Kind::True {
                        let _ = writeln!(out, "        let {} = {test};", local_ident(&p.name));
                    } else {
                        let _ = writeln!(
                            out,
                            "        let {}: ::std::option::Option<{}> = if {test} {{ ::std::option::Option::Some({}) }} else {{ ::std::option::Option::None }};",
                            local_ident(&p.name),
                            self.rust_type(kind, &owner),
                            self.de(kind)
                        );
                    }
                }
                _ => {}
            }
        }
        let inits = def
            .params
            .iter()
            .filter(|p| !matches!(p.ty, ParamType::Flags))
            .map(|p| format!("{}: {}", field_ident(&p.name), local_ident(&p.name)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "        ::std::result::Result::Ok(Self {{ {inits} }})\n    }}\n}}"
        );
        let _ = writeln!(
            out,
            "impl{de_decl} {rt}::Deserializable for {name}{uses} {{ const MIN_WIRE_SIZE: usize = 4 + <Self as {rt}::BareDeserializable>::MIN_BARE_SIZE; fn deserialize(r: &mut {rt}::Reader<'_>) -> ::std::result::Result<Self, {rt}::DecodeError> {{ r.expect_constructor(0x{id:08x}, \"{}\")?; {rt}::BareDeserializable::deserialize_bare(r) }} }}",
            def.full_name()
        );

        // Functions: the return type.
        if def.category == Category::Function {
            let ret = self.resolve(&def.ty, &def.generics)?;
            match ret {
                Kind::Generic(g) => {
                    let _ = writeln!(
                        out,
                        "impl<{g}: {rt}::RemoteCall> {rt}::RemoteCall for {name}{uses} {{ type Return = {g}::Return; }}"
                    );
                }
                kind if kind.via_traits() => {
                    let _ = writeln!(
                        out,
                        "impl {rt}::RemoteCall for {name} {{ type Return = {}; }}",
                        self.rust_type(&kind, "<return>")
                    );
                }
                _ => {
                    return err(format!(
                        "function `{}` returns a bare type",
                        def.full_name()
                    ));
                }
            }
        }

        // Value generator for property tests.
        let feature = &self.config.testing_feature;
        let (gen_decl, _) = Self::generics_decl(def, &format!("{rt}::testing::Generate"));
        let _ = writeln!(out, "#[cfg(feature = \"{feature}\")]");
        let _ = writeln!(
            out,
            "impl{gen_decl} {rt}::testing::Generate for {name}{uses} {{"
        );
        let _ = writeln!(
            out,
            "    fn generate(g: &mut {rt}::testing::Gen) -> Self {{"
        );
        for (field, bit) in groups.keys() {
            let _ = writeln!(
                out,
                "        let bit_{}_{bit} = g.present();",
                field.to_ascii_lowercase()
            );
        }
        let inits = def
            .params
            .iter()
            .zip(&kinds)
            .filter_map(|(p, kind)| {
                let kind = kind.as_ref()?;
                let value = match &p.ty {
                    ParamType::Normal { flag: Some(f), .. } => {
                        let bit = format!("bit_{}_{}", f.field.to_ascii_lowercase(), f.bit);
                        if *kind == Kind::True {
                            bit
                        } else {
                            format!("if {bit} {{ ::std::option::Option::Some({rt}::testing::Generate::generate(g)) }} else {{ ::std::option::Option::None }}")
                        }
                    }
                    _ => format!("{rt}::testing::Generate::generate(g)"),
                };
                Some(format!("{}: {value}", field_ident(&p.name)))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(out, "        Self {{ {inits} }}\n    }}\n}}");
        Ok(())
    }

    fn emit_enum(
        &self,
        full: &str,
        ctor_indices: &[usize],
        out: &mut String,
    ) -> Result<(), GenerateError> {
        let rt = self.rt();
        let name = pascal(full.rsplit('.').next().unwrap_or(full));
        let variants: Vec<(String, &Definition, bool)> = ctor_indices
            .iter()
            .filter_map(|&i| {
                self.ctors
                    .get(i)
                    .map(|def| (pascal(&def.name), *def, self.boxed_variants.contains(&i)))
            })
            .collect();
        let mut seen = BTreeSet::new();
        for (v, _, _) in &variants {
            if !seen.insert(v.clone()) {
                return err(format!("two constructors of `{full}` map to variant `{v}`"));
            }
        }
        let _ = writeln!(
            out,
            "/// The boxed TL type `{full}`: one variant per constructor."
        );
        out.push_str("#[derive(Clone, Debug, PartialEq)]\n");
        let _ = writeln!(out, "pub enum {name} {{");
        for (v, def, boxed) in &variants {
            out.push_str(&doc_line(&def.source));
            if *boxed {
                let _ = writeln!(
                    out,
                    "    {v}(::std::boxed::Box<{}>),",
                    self.struct_path(def)
                );
            } else {
                let _ = writeln!(out, "    {v}({}),", self.struct_path(def));
            }
        }
        out.push_str("}\n");
        for (v, def, boxed) in &variants {
            let wrap = if *boxed {
                "::std::boxed::Box::new(x)"
            } else {
                "x"
            };
            let _ = writeln!(
                out,
                "impl ::std::convert::From<{path}> for {name} {{ fn from(x: {path}) -> Self {{ Self::{v}({wrap}) }} }}",
                path = self.struct_path(def)
            );
        }
        // Serializable.
        let _ = writeln!(out, "impl {rt}::Serializable for {name} {{");
        let _ = writeln!(
            out,
            "    fn serialize<B: {rt}::BufMut>(&self, buf: &mut B) {{"
        );
        out.push_str("        match self {\n");
        for (v, def, _) in &variants {
            let _ = writeln!(
                out,
                "            Self::{v}(x) => {{ {rt}::write_u32(buf, 0x{:08x}); {rt}::BareSerializable::serialize_bare(x, buf); }}",
                def.id.unwrap_or(0)
            );
        }
        out.push_str("        }\n    }\n}\n");
        // Deserializable.
        let _ = writeln!(out, "impl {rt}::Deserializable for {name} {{");
        out.push_str("    const MIN_WIRE_SIZE: usize = 4;\n");
        let _ = writeln!(
            out,
            "    fn deserialize(r: &mut {rt}::Reader<'_>) -> ::std::result::Result<Self, {rt}::DecodeError> {{"
        );
        out.push_str("        r.enter()?;\n        let value = match r.read_u32()? {\n");
        for (v, def, _) in &variants {
            let _ = writeln!(
                out,
                "            0x{:08x} => Self::{v}({rt}::BareDeserializable::deserialize_bare(r)?),",
                def.id.unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "            id => return ::std::result::Result::Err({rt}::DecodeError::UnknownConstructor {{ type_name: \"{full}\", id }}),"
        );
        out.push_str(
            "        };\n        r.leave();\n        ::std::result::Result::Ok(value)\n    }\n}\n",
        );
        // Constructor id of a value.
        let _ = writeln!(out, "impl {name} {{");
        out.push_str("    /// The constructor id of this value.\n    pub fn constructor_id(&self) -> u32 {\n        match self {\n");
        for (v, def, _) in &variants {
            let _ = writeln!(
                out,
                "            Self::{v}(_) => 0x{:08x},",
                def.id.unwrap_or(0)
            );
        }
        out.push_str("        }\n    }\n}\n");
        // Generator.
        let leaf = self.leaf_ctor.get(full).copied().unwrap_or(0);
        let feature = &self.config.testing_feature;
        let _ = writeln!(out, "#[cfg(feature = \"{feature}\")]");
        let _ = writeln!(out, "impl {rt}::testing::Generate for {name} {{");
        let _ = writeln!(
            out,
            "    fn generate(g: &mut {rt}::testing::Gen) -> Self {{"
        );
        let _ = writeln!(
            out,
            "        g.enter();\n        let value = match g.pick({}, {leaf}) {{",
            variants.len()
        );
        let last = variants.len().saturating_sub(1);
        for (index, (v, _, _)) in variants.iter().enumerate() {
            let pattern = if index == last {
                "_".to_owned()
            } else {
                index.to_string()
            };
            let _ = writeln!(
                out,
                "            {pattern} => Self::{v}({rt}::testing::Generate::generate(g)),"
            );
        }
        out.push_str("        };\n        g.leave();\n        value\n    }\n}\n");
        Ok(())
    }

    fn emit(&self) -> Result<String, GenerateError> {
        let rt = self.rt();
        let mut types: BTreeMap<Option<String>, String> = BTreeMap::new();
        let mut enums: BTreeMap<Option<String>, String> = BTreeMap::new();
        let mut functions: BTreeMap<Option<String>, String> = BTreeMap::new();
        for def in &self.ctors {
            self.emit_struct(def, types.entry(def.namespace.clone()).or_default())?;
        }
        for (full, list) in &self.type_ctors {
            let ns = full.rsplit_once('.').map(|(ns, _)| ns.to_owned());
            self.emit_enum(full, list, enums.entry(ns).or_default())?;
        }
        for def in &self.funcs {
            self.emit_struct(def, functions.entry(def.namespace.clone()).or_default())?;
        }
        let mut out = String::new();
        out.push_str("// @generated by columba-tl-gen from a TL schema. Do not edit.\n");
        for (module, doc, items) in [
            (
                "types",
                "Constructors: one struct per TL constructor.",
                &types,
            ),
            (
                "enums",
                "Boxed types: one enum per TL type, a variant per constructor.",
                &enums,
            ),
            (
                "functions",
                "Functions (RPC methods): one struct per TL function.",
                &functions,
            ),
        ] {
            let _ = writeln!(out, "/// {doc}\npub mod {module} {{");
            for (ns, code) in items {
                match ns {
                    None => out.push_str(code),
                    Some(ns) => {
                        let _ =
                            writeln!(out, "/// The `{ns}` namespace.\npub mod {ns} {{\n{code}}}");
                    }
                }
            }
            out.push_str("}\n");
        }

        // Names by id, for logs and errors.
        out.push_str("/// The TL name of a constructor or function id of this schema.\n");
        out.push_str("pub fn name_for_id(id: u32) -> ::std::option::Option<&'static str> {\n    match id {\n");
        for def in self.ctors.iter().chain(self.funcs.iter()) {
            let _ = writeln!(
                out,
                "        0x{:08x} => ::std::option::Option::Some(\"{}\"),",
                def.id.unwrap_or(0),
                def.full_name()
            );
        }
        out.push_str("        _ => ::std::option::Option::None,\n    }\n}\n");

        // Every constructor id, for fuzz dictionaries and tests.
        let _ = writeln!(
            out,
            "/// Every constructor and function id of this schema, with its TL name."
        );
        let _ = writeln!(out, "pub const ALL_IDS: &[(u32, &str)] = &[");
        for def in self.ctors.iter().chain(self.funcs.iter()) {
            let _ = writeln!(
                out,
                "    (0x{:08x}, \"{}\"),",
                def.id.unwrap_or(0),
                def.full_name()
            );
        }
        out.push_str("];\n");

        // Round-trip driver and fuzz dispatch.
        let feature = &self.config.testing_feature;
        let _ = writeln!(
            out,
            "/// Generates a value of every constructor, enum and function of this schema and checks\n/// that each encodes and decodes back to itself. Returns how many items were checked.\n#[cfg(feature = \"{feature}\")]\npub fn round_trip_every_type(g: &mut {rt}::testing::Gen) -> ::std::result::Result<usize, {rt}::testing::RoundTripFailure> {{"
        );
        let mut count = 0usize;
        for def in &self.ctors {
            let _ = writeln!(
                out,
                "    {rt}::testing::check_round_trip::<{}>(g)?;",
                self.struct_path(def)
            );
            count += 1;
        }
        for full in self.type_ctors.keys() {
            let _ = writeln!(
                out,
                "    {rt}::testing::check_round_trip::<{}>(g)?;",
                self.enum_path(full)
            );
            count += 1;
        }
        for def in &self.funcs {
            let args = self.raw_generic_args(def);
            let _ = writeln!(
                out,
                "    {rt}::testing::check_round_trip::<{}{args}>(g)?;",
                self.struct_path(def)
            );
            count += 1;
        }
        let _ = writeln!(out, "    ::std::result::Result::Ok({count})\n}}");

        let _ = writeln!(
            out,
            "/// Decodes `input` as whatever its leading constructor id names in this schema (a boxed\n/// type or a function) and checks that the value re-encodes to exactly the bytes consumed.\n/// `Ok(None)`: the id is unknown or the bytes do not decode; `Ok(Some(n))`: n bytes decoded\n/// and re-encoded identically.\n#[cfg(feature = \"{feature}\")]\npub fn decode_reencode(input: &[u8]) -> ::std::result::Result<::std::option::Option<usize>, {rt}::testing::RoundTripFailure> {{"
        );
        out.push_str("    let id = match input.get(..4) { ::std::option::Option::Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]), _ => return ::std::result::Result::Ok(::std::option::Option::None) };\n");
        out.push_str("    match id {\n");
        for (full, list) in &self.type_ctors {
            let ids = list
                .iter()
                .filter_map(|&i| self.ctors.get(i))
                .map(|d| format!("0x{:08x}", d.id.unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(" | ");
            let _ = writeln!(
                out,
                "        {ids} => {rt}::testing::decode_reencode::<{}>(input),",
                self.enum_path(full)
            );
        }
        for def in &self.funcs {
            let args = self.raw_generic_args(def);
            let _ = writeln!(
                out,
                "        0x{:08x} => {rt}::testing::decode_reencode::<{}{args}>(input),",
                def.id.unwrap_or(0),
                self.struct_path(def)
            );
        }
        out.push_str(
            "        _ => ::std::result::Result::Ok(::std::option::Option::None),\n    }\n}\n",
        );
        Ok(out)
    }
}

/// A type reference written back in TL syntax, for documentation.
fn tl_type_text(t: &TypeRef) -> String {
    let mut s = String::new();
    if t.generic_ref {
        s.push('!');
    }
    if let Some(ns) = &t.namespace {
        s.push_str(ns);
        s.push('.');
    }
    s.push_str(&t.name);
    if let Some(arg) = &t.arg {
        s.push('<');
        s.push_str(&tl_type_text(arg));
        s.push('>');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_schema;

    fn config() -> Config {
        Config {
            root: "crate::s".into(),
            runtime: "crate::tl".into(),
            skip: vec![],
            testing_feature: "testing".into(),
        }
    }

    #[test]
    fn names() {
        assert_eq!(pascal("p_q_inner_data_dc"), "PQInnerDataDc");
        assert_eq!(pascal("resPQ"), "ResPQ");
        assert_eq!(pascal("inputPeerUser"), "InputPeerUser");
        assert_eq!(field_ident("type"), "r#type");
        assert_eq!(field_ident("self"), "self_");
        assert_eq!(field_ident("srp_B"), "srp_b");
    }

    #[test]
    fn default_only_where_every_field_has_one() {
        let defs = parse_schema(
            "peerUser#1 id:long = Peer;\nuser#2 flags:# p:flags.0?Peer name:string tags:Vector<int> = User;\n\
             message#3 peer:Peer = Message;\n---functions---\nwrap#4 {X:Type} q:!X = X;",
        )
        .unwrap();
        let code = generate(&defs, &config()).unwrap();
        let derive_of = |name: &str| {
            let at = code.find(&format!("pub struct {name}")).unwrap();
            let start = code[..at].rfind("#[derive(").unwrap();
            code[start..at].to_owned()
        };
        assert!(derive_of("PeerUser").contains("Default"));
        assert!(
            derive_of("User ").contains("Default"),
            "an absent flag field is a default"
        );
        assert!(
            !derive_of("Message ").contains("Default"),
            "an enum field has none"
        );
        assert!(!derive_of("Wrap").contains("Default"), "a generic has none");
        assert!(
            code.contains("pub fn new(peer: crate::s::enums::Peer) -> Self { Self { peer } }"),
            "a struct without Default has a constructor of its required fields"
        );
        assert!(
            !code.contains("impl PeerUser {"),
            "one with Default needs none"
        );
    }

    #[test]
    fn recursive_fields_are_boxed_and_vectors_are_not() {
        let defs = parse_schema(
            "textPlain#1 text:string = RichText;\ntextBold#2 text:RichText = RichText;\n\
             textConcat#3 texts:Vector<RichText> = RichText;\npage#4 t:RichText = Page;",
        )
        .unwrap();
        let code = generate(&defs, &config()).unwrap();
        assert!(code.contains("pub text: ::std::boxed::Box<crate::s::enums::RichText>"));
        assert!(code.contains("pub texts: ::std::vec::Vec<crate::s::enums::RichText>"));
        assert!(code.contains("pub t: crate::s::enums::RichText"));
    }

    #[test]
    fn large_constructors_are_boxed_in_their_variant() {
        // 20 strings are 480 bytes inline: boxed. One int is not.
        let big: Vec<String> = (0..20).map(|i| format!("f{i}:string")).collect();
        let schema = format!("big#1 {} = T;\nsmall#2 x:int = T;", big.join(" "));
        let code = generate(&parse_schema(&schema).unwrap(), &config()).unwrap();
        assert!(code.contains("Big(::std::boxed::Box<crate::s::types::Big>)"));
        assert!(code.contains("Small(crate::s::types::Small)"));
        assert!(code.contains("Self::Big(::std::boxed::Box::new(x))"));
    }

    #[test]
    fn rejects_duplicate_ids_unknown_types_and_missing_ids() {
        assert!(generate(&parse_schema("a#1 = A;\nb#1 = B;").unwrap(), &config()).is_err());
        assert!(generate(&parse_schema("a#1 x:Nope = A;").unwrap(), &config()).is_err());
        assert!(generate(&parse_schema("a x:int = A;").unwrap(), &config()).is_err());
    }

    #[test]
    fn leaf_constructor_ends_recursion() {
        let cfg = config();
        let defs = parse_schema("wrap#2 inner:T = T;\nleaf#1 = T;").unwrap();
        let model = Model::new(&defs, &cfg).unwrap();
        assert_eq!(model.leaf_ctor.get("T"), Some(&1));
        // A type whose every constructor requires itself has no finite value.
        let defs = parse_schema("wrap#2 inner:T = T;").unwrap();
        assert!(Model::new(&defs, &cfg).is_err());
    }
}
