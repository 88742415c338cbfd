//! A Vigil firmware image booted under QEMU (OVMF, swtpm as its TPM, a virtio NIC and disk), as
//! the image tests drive it: the serial console (ttyS0) goes to a file, a root shell on ttyS1
//! (images built with `--dev-console`) answers commands, HTTPS is forwarded to a host port and
//! a second, read-only disk carries files into the box.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child killed by PID and reaped on drop (QEMU, swtpm).
#[derive(Debug)]
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A console that has said nothing for this long since QEMU started is taken for a firmware
/// hang (see [`VmBox::console_until`]): OVMF, GRUB and the kernel print within a minute of a
/// power-on under TCG.
const HUNG_BOOT_SILENCE: Duration = Duration::from_secs(180);

/// A booted (or booting) box.
#[derive(Debug)]
pub struct VmBox {
    dir: PathBuf,
    qemu: Option<Guard>,
    swtpm: Option<Guard>,
    shell: Option<UnixStream>,
    /// Shell output read past the last marker (the start of the next prompt, say), kept for the
    /// next read so that no command's output begins with the tail of another's.
    pending: Vec<u8>,
    /// Console text already consumed by `console_until`.
    seen: usize,
    commands: u32,
    /// What the test is doing, named in failure messages.
    phase: String,
    /// Host port forwarded to the box's 443.
    pub https: u16,
    disk: PathBuf,
    extra: Option<PathBuf>,
    /// Console length when QEMU last started: nothing past it means the firmware said nothing.
    launched_at: usize,
    launched: Instant,
    /// Times QEMU was started again after the box reset itself.
    pub power_ons: u32,
}

impl VmBox {
    /// Boots `disk` (modified in place) with the TPM state in `dir/tpm` and `extra` as a second,
    /// read-only virtio disk. TCG: OVMF does not run under the nested KVM of these machines.
    ///
    /// Every reset of the box is a power cycle: QEMU runs with `-action reboot=shutdown`, so a
    /// reboot (or a reset by the hardware watchdog) ends it, and the next look at the box starts
    /// QEMU and swtpm again on the same disk, firmware variables and TPM state. A warm reset
    /// would keep the process, and OVMF under TCG has hung in one with nothing on the console
    /// (twice in 20-odd image runs, the second time through a monitor `system_reset` too).
    pub fn boot(dir: &Path, disk: &Path, extra: Option<&Path>) -> VmBox {
        let mut b = VmBox {
            dir: dir.to_path_buf(),
            qemu: None,
            swtpm: None,
            shell: None,
            pending: Vec::new(),
            seen: 0,
            commands: 0,
            phase: "booting".to_owned(),
            https: free_port(),
            disk: disk.to_path_buf(),
            extra: extra.map(Path::to_path_buf),
            launched_at: 0,
            launched: Instant::now(),
            power_ons: 0,
        };
        let vars = dir.join("vars.fd");
        if !vars.exists() {
            std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).unwrap();
        }
        // The console log grows across boots of this box; `seen` keeps our place in it.
        b.seen = std::fs::metadata(b.console_path()).map_or(0, |m| m.len() as usize);
        b.launch();
        b
    }

    /// Starts swtpm and QEMU (after ending any earlier ones) and connects to the shell's port.
    fn launch(&mut self) {
        self.shell = None;
        self.pending.clear();
        self.qemu = None;
        self.swtpm = None;
        let dir = self.dir.clone();
        let tpm_dir = dir.join("tpm");
        std::fs::create_dir_all(&tpm_dir).unwrap();
        let tpm_sock = dir.join("swtpm.sock");
        let _ = std::fs::remove_file(&tpm_sock);
        self.swtpm = Some(Guard(
            Command::new("swtpm")
                .args(["socket", "--tpm2", "--tpmstate"])
                .arg(format!("dir={}", tpm_dir.display()))
                .arg("--ctrl")
                .arg(format!("type=unixio,path={}", tpm_sock.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("swtpm is installed by scripts/setup.sh"),
        ));
        wait_for_path(&tpm_sock);
        let shell_sock = dir.join("shell.sock");
        let _ = std::fs::remove_file(&shell_sock);
        let console = self.console_path();
        self.launched_at = std::fs::metadata(&console).map_or(0, |m| m.len() as usize);
        self.launched = Instant::now();
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args([
            "-machine", "q35", "-accel", "tcg", "-m", "1024", "-smp", "2", "-cpu", "max",
        ])
        .args([
            "-drive",
            "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
        ])
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,file={}",
            dir.join("vars.fd").display()
        ))
        .arg("-drive")
        .arg(format!("if=virtio,format=raw,file={}", self.disk.display()));
        if let Some(extra) = &self.extra {
            cmd.arg("-drive").arg(format!(
                "if=virtio,format=raw,readonly=on,file={}",
                extra.display()
            ));
        }
        cmd.arg("-netdev")
            .arg(format!(
                "user,id=n0,hostfwd=tcp:127.0.0.1:{}-:443",
                self.https
            ))
            .args(["-device", "virtio-net-pci,netdev=n0"])
            // The box's hardware watchdog (the q35 chipset's iTCO, which systemd feeds) resets
            // a hung box as it would in the field: QEMU's default strap keeps it from rebooting.
            // A reset, the watchdog's or the guest's, ends QEMU (see `boot`).
            .args([
                "-global",
                "ICH9-LPC.noreboot=false",
                "-action",
                "reboot=shutdown,watchdog=reset",
            ])
            .arg("-chardev")
            .arg(format!("socket,id=chrtpm,path={}", tpm_sock.display()))
            .args([
                "-tpmdev",
                "emulator,id=tpm0,chardev=chrtpm",
                "-device",
                "tpm-tis,tpmdev=tpm0",
            ])
            .arg("-chardev")
            .arg(format!("file,id=con,path={},append=on", console.display()))
            .args(["-serial", "chardev:con"])
            .arg("-serial")
            .arg(format!("unix:{},server=on,wait=off", shell_sock.display()))
            .arg("-monitor")
            .arg(format!(
                "unix:{},server=on,wait=off",
                dir.join("monitor.sock").display()
            ))
            .args(["-display", "none"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // The test's thread holds the box: QEMU goes when it ends, even if the test binary is
        // killed and the guard never runs.
        vigil_testkit::procs::stop_with_this_thread(&mut cmd);
        self.qemu = Some(Guard(
            cmd.spawn()
                .expect("qemu-system-x86 is installed by scripts/setup.sh"),
        ));
        wait_for_path(&shell_sock);
        self.shell = Some(UnixStream::connect(&shell_sock).unwrap());
    }

    fn console_path(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    /// The console text since this box was booted.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.console_path()).unwrap_or_default())
            .into_owned()
    }

    /// Panics if QEMU failed or the box powered off; starts it again if the box reset itself.
    fn check_running(&mut self, what: &str) {
        let Some(status) = self
            .qemu
            .as_mut()
            .and_then(|q| q.0.try_wait().ok().flatten())
        else {
            return;
        };
        let text = self.console();
        let since_launch = text.get(self.launched_at..).unwrap_or("");
        if !status.success() || since_launch.trim_end().ends_with("reboot: Power down") {
            panic!("QEMU exited ({status}) while {what}:\n{}", self.tail());
        }
        self.power_ons += 1;
        self.launch();
    }

    /// Names what the test does next, for failure messages.
    pub fn phase(&mut self, what: &str) {
        what.clone_into(&mut self.phase);
    }

    /// The last 30 lines of the console (colours stripped), what the test was doing, how long
    /// the console has been silent and what QEMU says of the machine: what a failure prints.
    pub fn tail(&self) -> String {
        let text = strip_ansi(&self.console());
        let lines: Vec<&str> = text.lines().collect();
        let silent = self
            .silent_for()
            .map_or_else(|| "?".to_owned(), |d| format!("{}s", d.as_secs()));
        format!(
            "phase: {}; console silent for {silent}; QEMU: {}\n{}",
            self.phase,
            self.monitor("info status").trim(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    /// How long ago the console last grew.
    fn silent_for(&self) -> Option<Duration> {
        std::fs::metadata(self.console_path())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
    }

    /// One QEMU monitor (HMP) command's answer; empty when the monitor does not answer.
    fn monitor(&self, cmd: &str) -> String {
        let Ok(mut s) = UnixStream::connect(self.dir.join("monitor.sock")) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let _ = s.write_all(format!("{cmd}\n").as_bytes());
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) if !got.is_empty() => break,
                Err(_) => {}
            }
        }
        let text = strip_ansi(&String::from_utf8_lossy(&got)).replace('\r', "");
        // The answer follows the echoed command, before the next prompt.
        text.split_once(cmd)
            .map_or(text.as_str(), |(_, rest)| rest)
            .trim_end_matches("(qemu) ")
            .trim()
            .to_owned()
    }

    /// Waits for the next console line holding `needle` (after what earlier calls consumed);
    /// returns that line and marks the console read up to it.
    ///
    /// A console that stays empty for [`HUNG_BOOT_SILENCE`] after QEMU started is taken for a
    /// hung firmware: the box is power-cycled once per wait, which is said on stderr, and given
    /// the whole limit again.
    pub fn console_until(&mut self, needle: &str, limit: Duration) -> String {
        let mut start = Instant::now();
        let mut cycled = false;
        loop {
            let text = self.console();
            if let Some(rel) = text.get(self.seen..).and_then(|t| t.find(needle)) {
                let at = self.seen + rel;
                let end = text[at..].find('\n').map_or(text.len(), |e| at + e);
                self.seen = end;
                return text[at..end].trim_end().to_owned();
            }
            self.check_running(&format!("waiting for {needle:?}"));
            if !cycled
                && text.len() <= self.launched_at
                && self.launched.elapsed() >= HUNG_BOOT_SILENCE
            {
                eprintln!(
                    "*** {}: nothing on the console {:?} after power-on (QEMU: {}): \
                     power-cycling the machine once ***",
                    self.phase,
                    HUNG_BOOT_SILENCE,
                    self.monitor("info status").trim()
                );
                self.launch();
                cycled = true;
                start = Instant::now();
            }
            assert!(
                start.elapsed() < limit,
                "no {needle:?} on the console within {limit:?}:\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn read_shell_until(&mut self, marker: &str, limit: Duration) -> String {
        match self.try_read_shell_until(marker, limit) {
            Ok(text) => text,
            Err(text) => panic!(
                "the shell did not answer {marker} within {limit:?}; it said:\n{text}\nconsole:\n{}",
                self.tail()
            ),
        }
    }

    /// What the shell said up to the end of `marker` (carriage returns removed), or (Err) what it
    /// said when `limit` ran out. Bytes read after the marker are kept for the next read.
    fn try_read_shell_until(&mut self, marker: &str, limit: Duration) -> Result<String, String> {
        let start = Instant::now();
        let mut got = std::mem::take(&mut self.pending);
        let mut buf = [0u8; 4096];
        loop {
            if let Some(at) = got
                .windows(marker.len())
                .position(|w| w == marker.as_bytes())
            {
                self.pending = got.split_off(at + marker.len());
                return Ok(String::from_utf8_lossy(&got).into_owned());
            }
            self.check_running(&format!("waiting for the shell ({marker})"));
            if start.elapsed() >= limit {
                return Err(String::from_utf8_lossy(&got).into_owned());
            }
            let shell = self.shell.as_mut().unwrap();
            shell
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            match shell.read(&mut buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(200)),
                Ok(n) => got.extend(buf[..n].iter().filter(|b| **b != b'\r')),
                Err(_) => {}
            }
        }
    }

    /// Waits until the root shell on ttyS1 answers (after a boot), with echo off.
    pub fn shell_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            self.commands += 1;
            let tag = format!("VIGIL-SH-READY-{}", self.commands);
            let shell = self.shell.as_mut().unwrap();
            shell
                // No line editing and no echo: only output comes back. The tag is split in
                // the command so that an echo of the input never looks like the answer.
                .write_all(
                    format!(
                        "\nset +o emacs +o vi; stty -echo cols 500; echo VIGIL\"\"{}-ok\n",
                        &tag[5..]
                    )
                    .as_bytes(),
                )
                .unwrap();
            let left = limit.saturating_sub(start.elapsed());
            let step = left.min(Duration::from_secs(10));
            if self
                .try_read_shell_until(&format!("{tag}-ok\n"), step)
                .is_ok()
            {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "no shell on ttyS1 within {limit:?}:\n{}",
                self.tail()
            );
        }
    }

    /// Runs `cmd` in the box's root shell: its exit status and output (stdout and stderr).
    pub fn sh(&mut self, cmd: &str, limit: Duration) -> (i32, String) {
        self.commands += 1;
        let tag = format!("VIGIL-SH-{}", self.commands);
        let line = format!(
            "{{ {cmd} ; }} 2>&1; echo \"VIGIL\"\"{} rc=$?\"\n",
            &tag[5..]
        );
        self.shell
            .as_mut()
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        let text = self.read_shell_until(&format!("{tag} rc="), limit);
        // The status follows the marker; wait for its line to end.
        let text = if text[text.find(&format!("{tag} rc=")).unwrap()..].contains('\n') {
            text
        } else {
            text + &self.read_shell_until("\n", Duration::from_secs(10))
        };
        let at = text.find(&format!("{tag} rc=")).unwrap();
        let rc: i32 = text[at + tag.len() + 4..]
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .parse()
            .unwrap_or(-1);
        let output: String = text[..at]
            .lines()
            .map(|l| l.trim_start_matches("root@vigil:~# "))
            .filter(|l| !l.is_empty() && !l.contains("VIGIL\"\""))
            .collect::<Vec<_>>()
            .join("\n");
        (rc, output)
    }

    /// Like `sh`, and panics unless the command succeeded.
    pub fn sh_ok(&mut self, cmd: &str, limit: Duration) -> String {
        let (rc, out) = self.sh(cmd, limit);
        assert_eq!(rc, 0, "`{cmd}` failed in the box:\n{out}");
        out
    }

    /// Powers the box off from its shell and waits for QEMU (and swtpm) to end.
    pub fn power_off(&mut self) {
        if let Some(shell) = self.shell.as_mut() {
            let _ = shell.write_all(b"systemctl poweroff\n");
        }
        let start = Instant::now();
        if let Some(q) = self.qemu.as_mut() {
            while start.elapsed() < Duration::from_secs(120) {
                if let Ok(Some(_)) = q.0.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        self.shell = None;
        self.qemu = None;
        self.swtpm = None;
    }
}

/// `text` without terminal escape sequences (systemd colours its status lines).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        }
    }
    out
}

fn wait_for_path(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.exists() {
        assert!(Instant::now() < deadline, "{} was not created", p.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port free right now (QEMU binds it for the forwarded HTTPS).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}
