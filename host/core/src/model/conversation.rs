//! Conversations and their items (the Responses surface): a conversation is an ordered list of
//! items — messages, tool calls and their outputs — that responses read as context and append
//! to.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::{ConversationId, ItemId, ResponseId};
use super::Metadata;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub object: String,
    pub created_at: i64,
    pub metadata: Metadata,
}

/// One item as stored: its wire shape (`type`, `id`, `status` and the type's fields), plus
/// where it belongs, which the store keeps in columns and clients never see.
///
/// An item belongs to a conversation, to a response (its input or output), or to both: a
/// response made in a conversation adds its items to it. Deleting the conversation leaves the
/// response's items (as OpenAI's does); items added to the conversation directly go with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub id: ItemId,
    /// The item's wire fields besides `id`.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
    #[serde(skip)]
    pub conversation_id: Option<ConversationId>,
    #[serde(skip)]
    pub response_id: Option<ResponseId>,
    /// Column only (lists order by insertion, not by this).
    #[serde(skip)]
    pub created_at: i64,
}

impl Item {
    /// The item's `type` (`message`, `function_call`, …).
    pub fn kind(&self) -> &str {
        self.fields
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// An item from its wire JSON (`id` and the type's fields), belonging nowhere yet; `None`
    /// if it is not an object with an id.
    pub fn from_wire(v: &Value) -> Option<Item> {
        let mut fields = v.as_object()?.clone();
        let id = serde_json::from_value(fields.remove("id")?).ok()?;
        Some(Item {
            id,
            fields,
            conversation_id: None,
            response_id: None,
            created_at: 0,
        })
    }

    /// A field of the wire shape.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }
}
