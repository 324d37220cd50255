-- Conversations and items (the Responses surface). An item is a message, a tool call or a
-- tool call's output, stored in its wire shape; it belongs to a conversation, to a response
-- (its input or output), or to both. No foreign keys: deleting a conversation leaves the items
-- of its responses (as OpenAI's does), so the API deletes what goes with it itself.

CREATE TABLE conversations (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    project_id  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    body        TEXT NOT NULL
);

-- An item's id is not unique: an item a client sends back (an output of an earlier response
-- given as input) keeps its id in the new response and conversation.
CREATE TABLE items (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    conversation_id TEXT,
    response_id     TEXT,
    created_at      BIGINT NOT NULL,
    body            TEXT NOT NULL
);
CREATE INDEX items_id ON items(id);
CREATE INDEX items_conversation ON items(conversation_id, seq);
CREATE INDEX items_response ON items(response_id, seq);
