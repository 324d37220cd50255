-- The headers an assistant sends to each of its remote MCP servers (the extension `mcp` tool
-- of assistants), sealed to the assistant and the server (`crate::seal`): kept apart from the
-- assistant's `tools`, which are shown to clients, and deleted with the assistant.
CREATE TABLE mcp_headers (
    owner_id      TEXT NOT NULL,
    server_label  TEXT NOT NULL,
    server_url    TEXT NOT NULL,
    sealed        TEXT NOT NULL,
    PRIMARY KEY (owner_id, server_label)
);
