//! JSON values rendered by hand: any number spelling, escapes, lone surrogates, deep nesting.

use super::change::{Key, key_text};
use arbitrary::Arbitrary;
use std::fmt::Write as _;

/// A small JSON tree.
#[derive(Arbitrary, Debug, Clone)]
pub enum J {
    Null,
    Bool(bool),
    Int(i32),
    Num(NumTok),
    Float(f64),
    Str(Str),
    Arr(Vec<J>),
    Obj(Vec<(Key, J)>),
    /// `depth` (modulo 20) levels of `{"n": …}` or `[…]` around `leaf`.
    Nest {
        depth: u8,
        array: bool,
        leaf: Box<J>,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum NumTok {
    Exp15,
    NegZero,
    ExpPlus,
    Tiny,
    Huge,
    U64Max,
    I64Min,
    OutOfRange,
    LeadingZero,
    TrailingDot,
    Minus,
}

impl NumTok {
    pub fn spelling(self) -> &'static str {
        match self {
            NumTok::Exp15 => "1e15",
            NumTok::NegZero => "-0",
            NumTok::ExpPlus => "1E+2",
            NumTok::Tiny => "1e-7",
            NumTok::Huge => "123456789012345678901234567890",
            NumTok::U64Max => "18446744073709551615",
            NumTok::I64Min => "-9223372036854775808",
            NumTok::OutOfRange => "1e400",
            NumTok::LeadingZero => "01",
            NumTok::TrailingDot => "1.",
            NumTok::Minus => "-",
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Str {
    Word(Word),
    Text(String),
    /// Every character written as `\uXXXX` (surrogate pairs beyond the BMP).
    Escaped(String),
    Repeat {
        ch: char,
        count: u16,
    },
    LoneSurrogate,
    BadEscape,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Word {
    Empty,
    On,
    Red,
    Unicode,
    Control,
    Quote,
}

pub(super) fn string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a string serializes"));
}

pub(super) fn quoted(s: &str) -> String {
    let mut out = String::new();
    string(&mut out, s);
    out
}

/// `value` as JSON text.
pub(super) fn json(value: &J) -> String {
    let mut out = String::new();
    render_j(&mut out, value);
    out
}

pub(super) fn render_j(out: &mut String, value: &J) {
    match value {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Int(n) => {
            let _ = write!(out, "{n}");
        }
        J::Num(tok) => out.push_str(tok.spelling()),
        J::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => out.push_str(&n.to_string()),
            None => out.push_str("1.5"),
        },
        J::Str(s) => render_str(out, s),
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render_j(out, item);
            }
            out.push(']');
        }
        J::Obj(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, key_text(key));
                out.push(':');
                render_j(out, item);
            }
            out.push('}');
        }
        J::Nest { depth, array, leaf } => {
            let depth = usize::from(*depth % 20);
            for _ in 0..depth {
                out.push_str(if *array { "[" } else { "{\"n\":" });
            }
            render_j(out, leaf);
            for _ in 0..depth {
                out.push(if *array { ']' } else { '}' });
            }
        }
    }
}

fn render_str(out: &mut String, s: &Str) {
    match s {
        Str::Word(word) => string(
            out,
            match word {
                Word::Empty => "",
                Word::On => "on",
                Word::Red => "red",
                Word::Unicode => "é😀",
                Word::Control => "\u{1}\n",
                Word::Quote => "\"\\",
            },
        ),
        Str::Text(text) => string(out, text),
        Str::Escaped(text) => {
            out.push('"');
            for unit in text.encode_utf16() {
                let _ = write!(out, "\\u{unit:04x}");
            }
            out.push('"');
        }
        // At most 12,000: enough to cross the 10,240-character patch limit; longer strings
        // only slow the runs down (the packet limit is reached with `Padded` or `Big`).
        Str::Repeat { ch, count } => {
            string(out, &ch.to_string().repeat(usize::from(*count) % 12_001))
        }
        Str::LoneSurrogate => out.push_str("\"\\ud800\""),
        Str::BadEscape => out.push_str("\"\\x41\""),
    }
}
