//! Running the program on crafted frames with `BPF_PROG_TEST_RUN`, for tests and `perf/xdp`.
//! The program is loaded but never attached; its maps are pinned in a private directory that
//! is removed on drop, so runs never touch a live interface's state.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    programs::{TestRun, TestRunOptions, Xdp},
};

use crate::{XdpError, maps::VigilMaps};

/// XDP return codes.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunResult {
    pub action: u32,
    /// Mean time per run as the kernel measured it.
    pub per_run: Duration,
}

/// A loaded, unattached copy of a program.
#[derive(Debug)]
pub struct TestProgram {
    ebpf: Ebpf,
    program: String,
    dir: Option<PathBuf>,
    /// The program's maps (present for Vigil's program, absent for the bare reference).
    pub maps: Option<VigilMaps>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl TestProgram {
    /// Loads Vigil's program with its maps pinned under `/sys/fs/bpf/vigil-test-<pid>-<n>`.
    pub fn vigil() -> Result<Self, XdpError> {
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/vigil-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).map_err(XdpError::io("creating a test pin directory", &dir))?;
        // The build with the SYN guard: every verdict of the other, and the guard's tests too.
        let mut me = Self::load(crate::OBJECT_SYN_GUARD, crate::PROGRAM, Some(dir.clone()))?;
        let mut maps = VigilMaps::open(&dir)?;
        maps.set_syn_capable(true)?;
        me.maps = Some(maps);
        Ok(me)
    }

    /// Loads an object with no pinned maps (the bare `XDP_DROP` reference).
    pub fn bare_drop() -> Result<Self, XdpError> {
        Self::load(crate::BARE_DROP_OBJECT, "bare_drop", None)
    }

    fn load(object: &[u8], program: &str, dir: Option<PathBuf>) -> Result<Self, XdpError> {
        let mut loader = EbpfLoader::new();
        if let Some(d) = &dir {
            loader.default_map_pin_directory(d);
        }
        let mut me = TestProgram {
            ebpf: loader.load(object).map_err(|e| XdpError::Load {
                source: Box::new(e),
            })?,
            program: program.to_owned(),
            dir,
            maps: None,
        };
        let prog = me.xdp()?;
        prog.load().map_err(|e| XdpError::Program {
            what: "verifying".into(),
            source: e,
        })?;
        Ok(me)
    }

    fn xdp(&mut self) -> Result<&mut Xdp, XdpError> {
        self.ebpf
            .program_mut(&self.program)
            .ok_or_else(|| XdpError::Load {
                source: Box::new(aya::EbpfError::NoBTF),
            })?
            .try_into()
            .map_err(|e| XdpError::Program {
                what: "not an XDP program".into(),
                source: e,
            })
    }

    /// Runs the program `repeat` times on `frame` (at least 14 bytes: the kernel's minimum).
    pub fn run(&mut self, frame: &[u8], repeat: u32) -> Result<RunResult, XdpError> {
        let prog = self.xdp()?;
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.repeat = repeat.max(1);
        let r = prog.test_run(opts).map_err(|e| XdpError::Program {
            what: "BPF_PROG_TEST_RUN".into(),
            source: e,
        })?;
        Ok(RunResult {
            action: r.return_value,
            per_run: r.duration,
        })
    }

    /// Runs the program once on `frame` and returns its action with the frame as the program
    /// left it (rewritten for `XDP_TX`).
    pub fn run_out(&mut self, frame: &[u8]) -> Result<(u32, Vec<u8>), XdpError> {
        let prog = self.xdp()?;
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        let r = prog.test_run(opts).map_err(|e| XdpError::Program {
            what: "BPF_PROG_TEST_RUN".into(),
            source: e,
        })?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }

    pub fn pin_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

impl Drop for TestProgram {
    fn drop(&mut self) {
        self.maps = None;
        if let Some(dir) = &self.dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}
