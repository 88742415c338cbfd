//! A client namespace joined to the host by a veth pair. The host end (`host_if`) is where
//! XDP is attached; clients run inside the namespace on threads that `setns` into it.

use std::{fs::File, os::fd::AsRawFd, process::Command, thread};

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        anyhow::bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Removed with everything in it on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    pub host_if: String,
    pub host_addr: String,
    /// Addresses the namespace side holds (clients bind to pick their source).
    pub client_addrs: Vec<String>,
}

impl Netns {
    /// `subnet` picks 198.18.<subnet>.0/24: host .1, clients .2 ..= .(1 + clients).
    pub fn new(tag: &str, subnet: u8, clients: u8) -> anyhow::Result<Netns> {
        let name = format!("vgt{tag}");
        let host_if = format!("vgh{tag}");
        let peer_if = format!("vgp{tag}");
        let ns = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
            host_addr: format!("198.18.{subnet}.1"),
            client_addrs: (0..clients)
                .map(|i| format!("198.18.{subnet}.{}", 2 + i))
                .collect(),
        };
        // Leftovers of a crashed earlier run with the same pid would make `add` fail.
        let _ = ip(&["netns", "del", &name]);
        let _ = ip(&["link", "del", &host_if]);
        ip(&["netns", "add", &name])?;
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if, "netns", &name,
        ])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", ns.host_addr),
            "dev",
            &host_if,
        ])?;
        ip(&["link", "set", &host_if, "up"])?;
        for a in &ns.client_addrs {
            ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{a}/24"),
                "dev",
                &peer_if,
            ])?;
        }
        ip(&["-n", &name, "link", "set", &peer_if, "up"])?;
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs `f` on a thread inside the namespace: sockets it opens live there.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let file = File::open(format!("/var/run/netns/{}", self.name))?;
        let handle = thread::spawn(move || {
            // SAFETY: `file` is an open namespace file; setns only affects this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(f())
        });
        let res = handle
            .join()
            .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?;
        Ok(res?)
    }

    /// `ping` from one of the client addresses; true if any reply came back.
    pub fn ping_from(&self, src: &str, count: u32) -> bool {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "ping",
                "-n",
                "-q",
                "-c",
                &count.to_string(),
            ])
            .args(["-i", "0.2", "-W", "1", "-I", src, &self.host_addr])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}
