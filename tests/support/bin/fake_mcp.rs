//! `fake-mcp`: the tests' fake MCP server ([`assistants_tests::mcp::FakeMcp`]) as a process of
//! its own, for checks that need it outside a test's runtime (a script, a server started
//! separately). Prints exactly one line, `FAKE_MCP_URL=<url>`, then serves until killed.

use std::io::Write;

#[tokio::main]
async fn main() {
    let mcp = assistants_tests::mcp::FakeMcp::start().await;
    {
        // Whoever started us waits for this line, so it goes out at once, not when a buffer fills.
        let mut out = std::io::stdout().lock();
        writeln!(out, "FAKE_MCP_URL={}", mcp.url).expect("writing the URL to stdout");
        out.flush().expect("flushing stdout");
    }
    // `mcp` stays alive while this waits: dropping it would stop the server.
    std::future::pending::<()>().await;
    drop(mcp);
}
