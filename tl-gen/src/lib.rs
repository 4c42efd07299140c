//! The TL schema parser and Rust code generator behind `columba_mtproto::tl`.
//!
//! TL (Type Language) is how Telegram describes every object on the wire. This crate reads a
//! `.tl` file ([`parse_schema`]) and writes Rust source for it ([`generate`]): a struct per
//! constructor, an enum per boxed type, a struct per function with its return type, and, behind
//! a testing feature, a value generator per item plus round-trip drivers for property tests and
//! fuzzing. `columba-mtproto` runs it from its build script.
//!
//! It is not a runtime: the generated code calls traits and helpers that the including crate
//! provides (see [`generate::Config::runtime`]), and it is not a general TL compiler (no
//! dependent types beyond `{X:Type}` generics, which are all the Telegram schemas use).

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod generate;
pub mod parse;

pub use generate::{Config, GenerateError, generate};
pub use parse::{Definition, ParseError, parse_schema};

/// Parses `schema` and generates Rust code for it in one step.
pub fn generate_from_str(
    schema: &str,
    config: &Config,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let definitions = parse_schema(schema)?;
    Ok(generate(&definitions, config)?)
}
