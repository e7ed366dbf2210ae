//! lossyfs: a FUSE file system for tests that loses what was not synced.
//!
//! Everything lives in memory, twice: the state every process sees (`current`), and the state a
//! power cut would leave (`durable`). `fsync`/`fdatasync` of a file makes its contents and size
//! durable; `fsync` of a directory makes its entries (names -> files) durable. Nothing else
//! does. [`Mounted::drop_unsynced`] throws the rest away: every file's contents and every
//! directory's entries go back to what was last synced, and files that no durable entry names
//! are gone, as after a crash of the machine (a file whose entry was synced but whose data never
//! was comes back empty, as on ext4). Stop the processes using it first (kill -9).
//!
//! With [`Durability::Ordered`] an `fsync` of a file or directory also makes durable the entries
//! that name it and its parents (as ext4's journal, which commits the entries created before
//! with the inode, usually does); [`Durability::Strict`] is POSIX's letter: only `fsync` of the
//! directory does.
//!
//! Files are kept as 4 KiB pages shared between the two states (copy on write), so an `fsync`
//! copies the pages written since the last one, not the file. Reads and writes bypass the
//! kernel's page cache (`direct_io`) and entries and attributes are not cached, so after a drop
//! every process sees the durable state. Not modelled: hard links, symlinks, special files,
//! xattrs, mmap (`direct_io` refuses shared writable maps), and the finer orderings of real file
//! systems (an ext4 `fsync` of a new file often makes its entry durable too; here only the
//! directory's `fsync` does).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    Request, TimeOrNow, WriteFlags,
};

const PAGE: u64 = 4096;
/// Nothing is cached by the kernel: a drop must be seen at once.
const TTL: Duration = Duration::ZERO;
const ROOT: u64 = 1;

type Page = Arc<Vec<u8>>;

#[derive(Clone, Debug, Default)]
struct FileData {
    pages: BTreeMap<u64, Page>,
    len: u64,
}

impl FileData {
    fn read(&self, offset: u64, size: u64) -> Vec<u8> {
        let end = (offset + size).min(self.len);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut pos = offset;
        while pos < end {
            let (p, within) = (pos / PAGE, pos % PAGE);
            let take = (PAGE - within).min(end - pos);
            match self.pages.get(&p) {
                Some(page) => out.extend_from_slice(&page[within as usize..(within + take) as usize]),
                None => out.resize(out.len() + take as usize, 0),
            }
            pos += take;
        }
        out
    }

    /// Writes `data` at `offset`; returns the pages touched.
    fn write(&mut self, offset: u64, data: &[u8], touched: &mut BTreeSet<u64>) {
        let mut pos = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let (p, within) = (pos / PAGE, pos % PAGE);
            let take = ((PAGE - within) as usize).min(rest.len());
            let page = self.pages.entry(p).or_insert_with(|| Arc::new(vec![0; PAGE as usize]));
            Arc::make_mut(page)[within as usize..within as usize + take].copy_from_slice(&rest[..take]);
            touched.insert(p);
            rest = &rest[take..];
            pos += take as u64;
        }
        self.len = self.len.max(offset + data.len() as u64);
    }

    fn truncate(&mut self, len: u64, touched: &mut BTreeSet<u64>) {
        if len < self.len {
            let keep = len.div_ceil(PAGE);
            self.pages.retain(|p, _| *p < keep);
            if !len.is_multiple_of(PAGE)
                && let Some(page) = self.pages.get_mut(&(len / PAGE))
            {
                Arc::make_mut(page)[(len % PAGE) as usize..].fill(0);
                touched.insert(len / PAGE);
            }
        }
        self.len = len;
    }
}

#[derive(Debug)]
enum Body {
    File {
        current: FileData,
        durable: FileData,
        /// Pages written since the last sync (and dropped pages: a truncate).
        dirty: BTreeSet<u64>,
        resized: bool,
    },
    Dir {
        current: BTreeMap<OsString, u64>,
        durable: BTreeMap<OsString, u64>,
        parent: u64,
    },
}

#[derive(Debug)]
struct Inode {
    body: Body,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: SystemTime,
    /// Open handles (a file unlinked while open lives until released).
    open: u32,
}

/// What a drop threw away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Files whose unsynced contents or size went back.
    pub files: usize,
    /// Directories whose unsynced entries went back.
    pub dirs: usize,
    /// Files and directories gone with their entries.
    pub gone: usize,
}

/// What makes a directory entry durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Only an `fsync` of its directory.
    Strict,
    /// Also an `fsync` of the file (or directory) it names, for every entry on its path.
    Ordered,
}

#[derive(Debug)]
struct State {
    inodes: HashMap<u64, Inode>,
    next: u64,
    durability: Durability,
}

impl State {
    fn new(durability: Durability) -> State {
        let mut inodes = HashMap::new();
        inodes.insert(
            ROOT,
            Inode {
                body: Body::Dir {
                    current: BTreeMap::new(),
                    durable: BTreeMap::new(),
                    parent: ROOT,
                },
                perm: 0o755,
                uid: 0,
                gid: 0,
                mtime: SystemTime::now(),
                open: 0,
            },
        );
        State {
            inodes,
            next: ROOT + 1,
            durability,
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.inodes.get(&ino)?;
        let (kind, size, nlink) = match &node.body {
            Body::File { current, .. } => (FileType::RegularFile, current.len, 1),
            Body::Dir { current, .. } => (FileType::Directory, 0, 2 + current.len() as u32),
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind,
            perm: node.perm,
            nlink,
            uid: node.uid,
            gid: node.gid,
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        })
    }

    fn entries(&mut self, dir: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match self.inodes.get_mut(&dir).map(|n| &mut n.body) {
            Some(Body::Dir { current, .. }) => Ok(current),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn referenced(&self, ino: u64) -> bool {
        self.inodes.values().any(|n| match &n.body {
            Body::Dir { current, durable, .. } => {
                current.values().any(|i| *i == ino) || durable.values().any(|i| *i == ino)
            }
            Body::File { .. } => false,
        })
    }

    /// Frees a file no entry names and no handle holds.
    fn collect(&mut self, ino: u64) {
        if ino != ROOT && self.inodes.get(&ino).is_some_and(|n| n.open == 0) && !self.referenced(ino) {
            self.inodes.remove(&ino);
        }
    }

    fn create(&mut self, parent: u64, name: &OsStr, mode: u32, req: &Request, dir: bool) -> Result<u64, Errno> {
        if self.entries(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next;
        self.next += 1;
        let body = if dir {
            Body::Dir {
                current: BTreeMap::new(),
                durable: BTreeMap::new(),
                parent,
            }
        } else {
            Body::File {
                current: FileData::default(),
                durable: FileData::default(),
                dirty: BTreeSet::new(),
                resized: false,
            }
        };
        self.inodes.insert(
            ino,
            Inode {
                body,
                perm: (mode & 0o7777) as u16,
                uid: req.uid(),
                gid: req.gid(),
                mtime: SystemTime::now(),
                open: 0,
            },
        );
        self.entries(parent)?.insert(name.to_os_string(), ino);
        Ok(ino)
    }

    /// Makes durable the entries naming `ino` and its parents up to the root.
    fn persist_names(&mut self, mut ino: u64) {
        while ino != ROOT {
            let named = self.inodes.iter().find_map(|(dir, n)| match &n.body {
                Body::Dir { current, .. } => current
                    .iter()
                    .find(|(_, i)| **i == ino)
                    .map(|(name, _)| (*dir, name.clone())),
                Body::File { .. } => None,
            });
            let Some((dir, name)) = named else { return };
            if let Some(Body::Dir { durable, .. }) = self.inodes.get_mut(&dir).map(|n| &mut n.body) {
                durable.insert(name, ino);
            }
            ino = dir;
        }
    }

    fn sync_file(&mut self, ino: u64) -> Result<(), Errno> {
        if self.durability == Durability::Ordered {
            self.persist_names(ino);
        }
        match self.inodes.get_mut(&ino).map(|n| &mut n.body) {
            Some(Body::File {
                current,
                durable,
                dirty,
                resized,
            }) => {
                for p in std::mem::take(dirty) {
                    match current.pages.get(&p) {
                        Some(page) => durable.pages.insert(p, page.clone()),
                        None => durable.pages.remove(&p),
                    };
                }
                if std::mem::take(resized) {
                    durable.pages.retain(|p, _| current.pages.contains_key(p));
                }
                durable.len = current.len;
                Ok(())
            }
            Some(Body::Dir { current, durable, .. }) => {
                *durable = current.clone();
                Ok(())
            }
            None => Err(Errno::ENOENT),
        }
    }

    fn drop_unsynced(&mut self) -> Dropped {
        let mut dropped = Dropped::default();
        for node in self.inodes.values_mut() {
            match &mut node.body {
                Body::File {
                    current,
                    durable,
                    dirty,
                    resized,
                } => {
                    if !dirty.is_empty() || *resized || current.len != durable.len {
                        dropped.files += 1;
                    }
                    *current = durable.clone();
                    dirty.clear();
                    *resized = false;
                }
                Body::Dir { current, durable, .. } => {
                    if current != durable {
                        dropped.dirs += 1;
                    }
                    *current = durable.clone();
                }
            }
            node.open = 0;
        }
        // What no durable entry reaches from the root is gone.
        let mut reachable = BTreeSet::from([ROOT]);
        let mut todo = vec![ROOT];
        while let Some(dir) = todo.pop() {
            if let Some(Body::Dir { current, .. }) = self.inodes.get(&dir).map(|n| &n.body) {
                for ino in current.values() {
                    if reachable.insert(*ino) {
                        todo.push(*ino);
                    }
                }
            }
        }
        let before = self.inodes.len();
        self.inodes.retain(|ino, _| reachable.contains(ino));
        dropped.gone = before - self.inodes.len();
        // A directory moved back keeps the parent it has now.
        let parents: Vec<(u64, u64)> = self
            .inodes
            .iter()
            .filter_map(|(dir, n)| match &n.body {
                Body::Dir { current, .. } => Some(current.values().map(move |c| (*c, *dir)).collect::<Vec<_>>()),
                Body::File { .. } => None,
            })
            .flatten()
            .collect();
        for (child, parent) in parents {
            if let Some(Body::Dir { parent: p, .. }) = self.inodes.get_mut(&child).map(|n| &mut n.body) {
                *p = parent;
            }
        }
        dropped
    }
}

/// The file system (give it to [`mount`]).
#[derive(Clone)]
struct LossyFs {
    state: Arc<Mutex<State>>,
}

impl LossyFs {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Filesystem for LossyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut s = self.lock();
        match s.entries(parent.0).map(|e| e.get(name).copied()) {
            Ok(Some(ino)) => match s.attr(ino) {
                Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
                None => reply.error(Errno::ENOENT),
            },
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.lock().attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.lock();
        let Some(node) = s.inodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(m) = mode {
            node.perm = (m & 0o7777) as u16;
        }
        node.uid = uid.unwrap_or(node.uid);
        node.gid = gid.unwrap_or(node.gid);
        if let Some(len) = size {
            match &mut node.body {
                Body::File {
                    current,
                    dirty,
                    resized,
                    ..
                } => {
                    current.truncate(len, dirty);
                    *resized = true;
                }
                Body::Dir { .. } => return reply.error(Errno::EISDIR),
            }
            node.mtime = SystemTime::now();
        }
        match s.attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::ENOSYS);
        }
        let mut s = self.lock();
        match s.create(parent.0, name, mode, req, false) {
            Ok(ino) => reply.entry(&TTL, &s.attr(ino).expect("just made"), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, _umask: u32, reply: ReplyEntry) {
        let mut s = self.lock();
        match s.create(parent.0, name, mode, req, true) {
            Ok(ino) => reply.entry(&TTL, &s.attr(ino).expect("just made"), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.lock();
        let ino = match s.entries(parent.0) {
            Ok(e) => match e.get(name).copied() {
                Some(ino) => ino,
                None => return reply.error(Errno::ENOENT),
            },
            Err(e) => return reply.error(e),
        };
        if matches!(s.inodes.get(&ino).map(|n| &n.body), Some(Body::Dir { .. })) {
            return reply.error(Errno::EISDIR);
        }
        if let Ok(e) = s.entries(parent.0) {
            e.remove(name);
        }
        s.collect(ino);
        reply.ok();
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.lock();
        let ino = match s.entries(parent.0).map(|e| e.get(name).copied()) {
            Ok(Some(ino)) => ino,
            Ok(None) => return reply.error(Errno::ENOENT),
            Err(e) => return reply.error(e),
        };
        match s.inodes.get(&ino).map(|n| &n.body) {
            Some(Body::Dir { current, .. }) if !current.is_empty() => return reply.error(Errno::ENOTEMPTY),
            Some(Body::Dir { .. }) => {}
            _ => return reply.error(Errno::ENOTDIR),
        }
        if let Ok(e) = s.entries(parent.0) {
            e.remove(name);
        }
        reply.ok();
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut s = self.lock();
        let ino = match s.entries(parent.0).map(|e| e.get(name).copied()) {
            Ok(Some(ino)) => ino,
            Ok(None) => return reply.error(Errno::ENOENT),
            Err(e) => return reply.error(e),
        };
        if let Err(e) = s.entries(newparent.0) {
            return reply.error(e);
        }
        if let Ok(e) = s.entries(parent.0) {
            e.remove(name);
        }
        let replaced = s
            .entries(newparent.0)
            .ok()
            .and_then(|e| e.insert(newname.to_os_string(), ino));
        if let Some(Body::Dir { parent: p, .. }) = s.inodes.get_mut(&ino).map(|n| &mut n.body) {
            *p = newparent.0;
        }
        if let Some(old) = replaced.filter(|old| *old != ino) {
            s.collect(old);
        }
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.lock();
        match s.inodes.get_mut(&ino.0) {
            Some(node) => {
                node.open += 1;
                reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.lock();
        match s.create(parent.0, name, mode, req, false) {
            Ok(ino) => {
                if let Some(node) = s.inodes.get_mut(&ino) {
                    node.open += 1;
                }
                let attr = s.attr(ino).expect("just made");
                reply.created(&TTL, &attr, Generation(0), FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let s = self.lock();
        match s.inodes.get(&ino.0).map(|n| &n.body) {
            Some(Body::File { current, .. }) => reply.data(&current.read(offset, u64::from(size))),
            Some(Body::Dir { .. }) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.lock();
        let Some(node) = s.inodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        node.mtime = SystemTime::now();
        match &mut node.body {
            Body::File { current, dirty, .. } => {
                current.write(offset, data, dirty);
                reply.written(data.len() as u32);
            }
            Body::Dir { .. } => reply.error(Errno::EISDIR),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lo: fuser::LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.lock();
        if let Some(node) = s.inodes.get_mut(&ino.0) {
            node.open = node.open.saturating_sub(1);
        }
        s.collect(ino.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        match self.lock().sync_file(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let s = self.lock();
        let Some(Body::Dir { current, parent, .. }) = s.inodes.get(&ino.0).map(|n| &n.body) else {
            return reply.error(Errno::ENOTDIR);
        };
        let mut all: Vec<(u64, FileType, OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (*parent, FileType::Directory, "..".into()),
        ];
        for (name, child) in current {
            let kind = match s.inodes.get(child).map(|n| &n.body) {
                Some(Body::Dir { .. }) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            all.push((*child, kind, name.clone()));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        match self.lock().sync_file(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let files = self.lock().inodes.len() as u64;
        // 64 GiB, nearly all free: the memory is the limit.
        reply.statfs(
            16 << 20,
            16 << 20,
            16 << 20,
            files + (1 << 20),
            1 << 20,
            PAGE as u32,
            255,
            PAGE as u32,
        );
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let mut s = self.lock();
        match s.inodes.get_mut(&ino.0).map(|n| &mut n.body) {
            Some(Body::File { current, resized, .. }) => {
                if offset + length > current.len {
                    current.len = offset + length;
                    *resized = true;
                }
                reply.ok();
            }
            Some(Body::Dir { .. }) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }
}

/// A mounted lossyfs; unmounted on drop.
pub struct Mounted {
    state: Arc<Mutex<State>>,
    session: Option<fuser::BackgroundSession>,
    path: PathBuf,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mounted({})", self.path.display())
    }
}

/// Mounts an empty lossyfs on `mountpoint` (an existing directory; needs root or fusermount).
///
/// # Errors
/// When `/dev/fuse` cannot be opened or the mount fails.
pub fn mount(mountpoint: &Path, durability: Durability) -> std::io::Result<Mounted> {
    let state = Arc::new(Mutex::new(State::new(durability)));
    let fs = LossyFs { state: state.clone() };
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("lossyfs".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    let session = fuser::spawn_mount(fs, mountpoint, &config)?;
    Ok(Mounted {
        state,
        session: Some(session),
        path: mountpoint.to_path_buf(),
    })
}

impl Mounted {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Throws away everything not synced (stop the processes writing here first).
    pub fn drop_unsynced(&self) -> Dropped {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).drop_unsynced()
    }

    /// Unmounts now (also done on drop).
    ///
    /// # Errors
    /// When the kernel refuses (busy).
    pub fn unmount(&mut self) -> std::io::Result<()> {
        match self.session.take() {
            Some(s) => s.umount_and_join(),
            None => Ok(()),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.unmount().is_err() {
            // Busy: detach it; it goes when the last user does.
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}
