//! A recording TCP proxy in front of swtpm: stands in for someone probing the TPM bus, so a test
//! can check what crosses it in clear.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Forwards `port` → `target` and `port + 1` → `target + 1`, recording every byte both ways.
pub struct Proxy {
    port: u16,
    captured: Arc<Mutex<Vec<u8>>>,
}

impl Proxy {
    pub fn start(target: u16) -> Proxy {
        let captured = Arc::new(Mutex::new(Vec::new()));
        loop {
            let cmd = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind proxy");
            let port = cmd.local_addr().unwrap().port();
            let Ok(ctrl) = TcpListener::bind((Ipv4Addr::LOCALHOST, port.wrapping_add(1))) else {
                continue;
            };
            forward(cmd, target, captured.clone());
            forward(ctrl, target + 1, captured.clone());
            return Proxy { port, captured };
        }
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Everything seen so far, both directions.
    pub fn captured(&self) -> Vec<u8> {
        self.captured.lock().unwrap().clone()
    }
}

fn forward(listener: TcpListener, target: u16, captured: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, target)) else { continue };
            pump(client.try_clone().unwrap(), server.try_clone().unwrap(), captured.clone());
            pump(server, client, captured.clone());
        }
    });
}

fn pump(mut from: TcpStream, mut to: TcpStream, captured: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            captured.lock().unwrap().extend_from_slice(&buf[..n]);
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}
