//! Parser plugins: the `parser` export, turning uploaded documents into text for vector
//! stores (see `wit/parser.wit`). Implement [`Parser`] and export it with
//! [`export_parser!`](crate::export_parser).

#[doc(hidden)]
pub mod bindings {
    world_bindings!("parser-plugin", "export_parser", "assistants_plugin::parser::bindings", {
        "assistants:plugin/logging@0.2.0": assistants_plugin::tool::bindings::assistants::plugin::logging,
    });
}

pub use bindings::exports::assistants::plugin::parser::{Guest as Parser, ParseError};
