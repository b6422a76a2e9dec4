//! A standalone S3-compatible server on loopback for the test scripts (`scripts/test.sh` starts
//! it and exports `S3_TEST_ENDPOINT`, `S3_TEST_ACCESS_KEY`, `S3_TEST_SECRET_KEY`): the same
//! signature-checking s3s-fs server the in-process tests use, as a separate process.
//!
//! `s3-test-server <data-dir> <port>`; prints `127.0.0.1:<port> <access-key> <secret-key>` once
//! it accepts connections, then serves until killed.

use std::path::PathBuf;

use milvus_storage::testing::S3TestServer;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(port)) = (args.next(), args.next()) else {
        eprintln!("usage: s3-test-server <data-dir> <port>");
        std::process::exit(2);
    };
    let port: u16 = port.parse().map_err(std::io::Error::other)?;
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let server = S3TestServer::start_on(&dir, port).await?;
    println!(
        "{}:{} {} {}",
        server.address, server.port, server.access_key, server.secret_key
    );
    std::future::pending::<()>().await;
    Ok(())
}
