//! A parser for `.tl` schema files, the form Telegram publishes its schemas in.
//!
//! The grammar handled is the one the service schema and the API schema use: one definition
//! per `;`, `---types---` / `---functions---` section markers, `//` comments, generic
//! parameters (`{X:Type}`), flag fields (`flags:#`, `name:flags.N?Type`), boxed and bare
//! vectors, bare types (`%Type` or a lower-case constructor name) and generic references
//! (`!X`). Built-in declarations such as `int ? = Int;` are skipped.

use std::fmt;

/// Whether a definition is a constructor (a type) or a function (an RPC method).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// A constructor of a boxed type, from a `---types---` section.
    Type,
    /// A function, from a `---functions---` section.
    Function,
}

/// A reference to a type, as written in a parameter or after the `=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeRef {
    /// The namespace before the dot (`messages` in `messages.Messages`), if any.
    pub namespace: Option<String>,
    /// The name without namespace (`Messages`, `int`, `Vector`, `X`).
    pub name: String,
    /// Bare: written with `%` or starting with a lower-case letter (primitives are bare).
    pub bare: bool,
    /// Written as `!X`: a reference to a generic parameter that stands for any function.
    pub generic_ref: bool,
    /// The argument of a vector (`long` in `Vector<long>`).
    pub arg: Option<Box<Self>>,
}

/// A flag condition: `flags.3?` is `Flag { field: "flags", bit: 3 }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flag {
    /// The name of the `#` field that carries the bit.
    pub field: String,
    /// The bit index, 0..=31.
    pub bit: u32,
}

/// The type of one parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamType {
    /// `name:#`, a 32-bit field of flag bits.
    Flags,
    /// Any other parameter, present only when `flag` is set if there is one.
    Normal {
        /// The parameter's type.
        ty: TypeRef,
        /// The flag bit that makes the parameter present.
        flag: Option<Flag>,
    },
}

/// One parameter of a definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parameter {
    /// The name as written in the schema.
    pub name: String,
    /// What it holds.
    pub ty: ParamType,
}

/// One definition: a constructor or a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Definition {
    /// The namespace before the dot, if any (`messages` in `messages.sendMessage`).
    pub namespace: Option<String>,
    /// The name without namespace.
    pub name: String,
    /// The constructor id, when written (`#0x...`); the special bare `message` has none.
    pub id: Option<u32>,
    /// Generic parameters, `{X:Type}`.
    pub generics: Vec<String>,
    /// The parameters in wire order.
    pub params: Vec<Parameter>,
    /// The boxed type this constructor builds, or the type a function returns.
    pub ty: TypeRef,
    /// Constructor or function.
    pub category: Category,
    /// The definition as written (whitespace collapsed), for documentation.
    pub source: String,
}

impl Definition {
    /// The full TL name, with its namespace (`messages.sendMessage`).
    pub fn full_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A schema that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based line where the failing definition starts.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole schema file into its definitions, in file order.
pub fn parse_schema(text: &str) -> Result<Vec<Definition>, ParseError> {
    let mut category = Category::Type;
    let mut definitions = Vec::new();
    let mut pending = String::new();
    let mut pending_line = 0;
    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = match raw_line.find("//") {
            Some(at) => raw_line.get(..at).unwrap_or(""),
            None => raw_line,
        }
        .trim();
        if line.is_empty() {
            continue;
        }
        if let Some(marker) = line.strip_prefix("---").and_then(|l| l.strip_suffix("---")) {
            if !pending.trim().is_empty() {
                return Err(ParseError {
                    line: pending_line,
                    message: "definition not closed by ';' before a section marker".into(),
                });
            }
            category = match marker {
                "types" => Category::Type,
                "functions" => Category::Function,
                other => {
                    return Err(ParseError {
                        line: line_no,
                        message: format!("unknown section ---{other}---"),
                    });
                }
            };
            continue;
        }
        if pending.is_empty() {
            pending_line = line_no;
        }
        let mut rest = line;
        while let Some(end) = rest.find(';') {
            pending.push(' ');
            pending.push_str(rest.get(..end).unwrap_or(""));
            if let Some(def) =
                parse_definition(pending.trim(), category).map_err(|message| ParseError {
                    line: pending_line,
                    message,
                })?
            {
                definitions.push(def);
            }
            pending.clear();
            pending_line = line_no;
            rest = rest.get(end + 1..).unwrap_or("");
        }
        if !rest.trim().is_empty() {
            pending.push(' ');
            pending.push_str(rest);
        }
    }
    if !pending.trim().is_empty() {
        return Err(ParseError {
            line: pending_line,
            message: "missing ';' at end of file".into(),
        });
    }
    Ok(definitions)
}

/// Parses one definition without its `;`. Returns `None` for built-in declarations
/// (`int ? = Int`) that define no constructor.
fn parse_definition(text: &str, category: Category) -> Result<Option<Definition>, String> {
    let source = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let (left, right) = source
        .split_once(" = ")
        .or_else(|| source.split_once('='))
        .ok_or_else(|| format!("no '=' in `{source}`"))?;
    let mut tokens = left.split_whitespace();
    let head = tokens
        .next()
        .ok_or_else(|| format!("empty definition `{source}`"))?;
    let rest: Vec<&str> = tokens.collect();
    if rest.contains(&"?") {
        return Ok(None);
    }
    let (full_name, id) = match head.split_once('#') {
        Some((name, hex)) => {
            let id = u32::from_str_radix(hex, 16)
                .map_err(|_| format!("bad constructor id `{hex}` in `{source}`"))?;
            (name, Some(id))
        }
        None => (head, None),
    };
    let (namespace, name) = split_namespace(full_name);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("bad name `{full_name}`"));
    }
    let mut generics = Vec::new();
    let mut params: Vec<Parameter> = Vec::new();
    for token in rest {
        if let Some(inner) = token.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            let (g, kind) = inner
                .split_once(':')
                .ok_or_else(|| format!("bad generic `{token}`"))?;
            if kind != "Type" {
                return Err(format!("unsupported generic kind `{kind}`"));
            }
            generics.push(g.to_owned());
            continue;
        }
        let (pname, ptype) = token
            .split_once(':')
            .ok_or_else(|| format!("bad parameter `{token}` in `{source}`"))?;
        if pname.is_empty() {
            return Err(format!("empty parameter name in `{source}`"));
        }
        let ty = if ptype == "#" {
            ParamType::Flags
        } else if let Some((cond, t)) = ptype.split_once('?') {
            let (field, bit) = cond
                .split_once('.')
                .ok_or_else(|| format!("bad flag condition `{cond}`"))?;
            let bit: u32 = bit
                .parse()
                .map_err(|_| format!("bad flag bit in `{cond}`"))?;
            if bit > 31 {
                return Err(format!("flag bit {bit} out of range in `{cond}`"));
            }
            let declared = params
                .iter()
                .any(|p| p.name == field && p.ty == ParamType::Flags);
            if !declared {
                return Err(format!("flag field `{field}` used before it is declared"));
            }
            ParamType::Normal {
                ty: parse_type(t)?,
                flag: Some(Flag {
                    field: field.to_owned(),
                    bit,
                }),
            }
        } else {
            ParamType::Normal {
                ty: parse_type(ptype)?,
                flag: None,
            }
        };
        params.push(Parameter {
            name: pname.to_owned(),
            ty,
        });
    }
    let ty = parse_type(right.trim())?;
    Ok(Some(Definition {
        namespace,
        name: name.to_owned(),
        id,
        generics,
        params,
        ty,
        category,
        source: format!("{source};"),
    }))
}

fn split_namespace(full: &str) -> (Option<String>, &str) {
    match full.rsplit_once('.') {
        Some((ns, name)) => (Some(ns.to_owned()), name),
        None => (None, full),
    }
}

/// Parses a type reference such as `Vector<long>`, `%Message`, `!X` or `messages.Chats`.
pub fn parse_type(text: &str) -> Result<TypeRef, String> {
    let (generic_ref, text) = match text.strip_prefix('!') {
        Some(t) => (true, t),
        None => (false, text),
    };
    let (percent, text) = match text.strip_prefix('%') {
        Some(t) => (true, t),
        None => (false, text),
    };
    let (base, arg) = match text.split_once('<') {
        Some((base, rest)) => {
            let inner = rest
                .strip_suffix('>')
                .ok_or_else(|| format!("unclosed '<' in `{text}`"))?;
            (base, Some(Box::new(parse_type(inner)?)))
        }
        None => (text, None),
    };
    let (namespace, name) = split_namespace(base);
    let first = name
        .chars()
        .next()
        .ok_or_else(|| format!("empty type in `{text}`"))?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("bad type name `{base}`"));
    }
    Ok(TypeRef {
        namespace,
        name: name.to_owned(),
        bare: percent || first.is_ascii_lowercase(),
        generic_ref,
        arg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_generics_and_vectors() {
        let defs = parse_schema(
            "---functions---\n\
             initConnection#c1cd5ea9 {X:Type} flags:# api_id:int proxy:flags.0?InputClientProxy \
             ids:Vector<long> query:!X = X;\n",
        )
        .unwrap();
        assert_eq!(defs.len(), 1);
        let d = &defs[0];
        assert_eq!(d.category, Category::Function);
        assert_eq!(d.id, Some(0xc1cd5ea9));
        assert_eq!(d.generics, vec!["X".to_owned()]);
        assert_eq!(d.params.len(), 5);
        assert_eq!(d.params[0].ty, ParamType::Flags);
        match &d.params[2].ty {
            ParamType::Normal {
                ty,
                flag: Some(flag),
            } => {
                assert_eq!(ty.name, "InputClientProxy");
                assert!(!ty.bare);
                assert_eq!(flag.bit, 0);
            }
            other => panic!("unexpected {other:?}"),
        }
        match &d.params[3].ty {
            ParamType::Normal { ty, flag: None } => {
                assert_eq!(ty.name, "Vector");
                assert_eq!(ty.arg.as_ref().unwrap().name, "long");
            }
            other => panic!("unexpected {other:?}"),
        }
        match &d.params[4].ty {
            ParamType::Normal { ty, .. } => assert!(ty.generic_ref),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn skips_builtins_and_comments_and_handles_namespaces() {
        let defs = parse_schema(
            "int ? = Int; // builtin\n// comment line\n\
             messages.chats#64ff9fd5 chats:Vector<Chat> = messages.Chats;\n\
             message msg_id:long body:Object = Message; // special\n",
        )
        .unwrap();
        assert_eq!(defs.len(), 2);
        assert_eq!(defs[0].namespace.as_deref(), Some("messages"));
        assert_eq!(defs[0].ty.namespace.as_deref(), Some("messages"));
        assert_eq!(defs[1].id, None);
    }

    #[test]
    fn rejects_undeclared_flag_field_and_bad_bits() {
        assert!(parse_schema("a#1 x:flags.0?int = A;").is_err());
        assert!(parse_schema("a#1 flags:# x:flags.32?int = A;").is_err());
        assert!(parse_schema("a#zz = A;").is_err());
        assert!(parse_schema("a#1 x:int = A").is_err());
    }

    #[test]
    fn bare_types_are_recognised() {
        let t = parse_type("vector<%Message>").unwrap();
        assert!(t.bare);
        assert!(t.arg.as_ref().unwrap().bare);
        assert!(!parse_type("Vector<future_salt>").unwrap().bare);
        assert!(parse_type("Vector<future_salt>").unwrap().arg.unwrap().bare);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = parse_schema(&text);
        }

        #[test]
        fn parsing_schema_like_text_never_panics(
            lines in proptest::collection::vec("[a-zA-Z_.#0-9:?<>!%{} =;-]{0,60}", 0..8),
        ) {
            let _ = parse_schema(&lines.join("\n"));
        }

        #[test]
        fn written_definitions_parse_back(
            name in "[a-z][a-zA-Z0-9]{0,10}",
            id in any::<u32>(),
            fields in proptest::collection::vec(("[a-z][a-z_]{0,8}", 0usize..4), 0..6),
        ) {
            let types = ["int", "long", "string", "Vector<long>"];
            let params: Vec<String> = fields
                .iter()
                .enumerate()
                .map(|(i, (f, t))| format!("{f}{i}:{}", types[*t]))
                .collect();
            let line = format!("{name}#{id:08x} {} = Thing;", params.join(" "));
            let defs = parse_schema(&line).unwrap();
            prop_assert_eq!(defs.len(), 1);
            prop_assert_eq!(defs[0].id, Some(id));
            prop_assert_eq!(defs[0].params.len(), fields.len());
            prop_assert_eq!(&defs[0].name, &name);
        }
    }
}
