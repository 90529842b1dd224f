//! The glibc a Linux binary needs: the highest `GLIBC_x.y[.z]` among its versioned symbol
//! requirements (the ELF `SHT_GNU_verneed` section, what `readelf --version-info` prints), read
//! here so `xdrsync package` can refuse a binary the Functions host images cannot start (the same
//! check as `scripts/package.sh`, without needing binutils). Little-endian ELF32/ELF64 only (the
//! Functions hosts are x86-64).

/// The newest glibc every Linux Functions host image provides (some are Debian 11, glibc 2.31;
/// `scripts/package.sh` builds for 2.28, as Microsoft's oldest supported images need).
pub const MAX_GLIBC: [u32; 2] = [2, 28];

const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;

/// A dotted version, compared numerically (2.9 < 2.28).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub Vec<u32>);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

impl Version {
    /// Newer than [`MAX_GLIBC`].
    pub fn too_new(&self) -> bool {
        self.0.as_slice() > MAX_GLIBC.as_slice()
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A section header's `(type, offset, size, link)`.
fn section(b: &[u8], wide: bool, at: usize) -> Option<(u32, usize, usize, u32)> {
    let kind = u32_at(b, at + 4)?;
    let (offset, size, link) = if wide {
        (u64_at(b, at + 24)?, u64_at(b, at + 32)?, u32_at(b, at + 40)?)
    } else {
        (u64::from(u32_at(b, at + 16)?), u64::from(u32_at(b, at + 20)?), u32_at(b, at + 24)?)
    };
    Some((kind, usize::try_from(offset).ok()?, usize::try_from(size).ok()?, link))
}

fn c_str(b: &[u8], at: usize) -> Option<&str> {
    let rest = b.get(at..)?;
    std::str::from_utf8(&rest[..rest.iter().position(|c| *c == 0)?]).ok()
}

/// The highest glibc version `elf` requires: `Ok(None)` when it requires none (statically linked).
pub fn max_glibc(elf: &[u8]) -> Result<Option<Version>, String> {
    const BAD: &str = "is not a readable ELF binary (its section headers are cut or malformed)";
    if !elf.starts_with(b"\x7fELF") {
        return Err("is not an ELF executable".into());
    }
    let wide = match elf.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(BAD.into()),
    };
    if elf.get(5) != Some(&1) {
        return Err("is not a little-endian ELF binary (the Functions hosts are x86-64)".into());
    }
    let fields = if wide {
        (|| Some((u64_at(elf, 0x28)?, u16_at(elf, 0x3A)?, u16_at(elf, 0x3C)?)))()
    } else {
        (|| Some((u64::from(u32_at(elf, 0x20)?), u16_at(elf, 0x2E)?, u16_at(elf, 0x30)?)))()
    };
    let (shoff, entsize, count) = fields.ok_or(BAD)?;
    let shoff = usize::try_from(shoff).map_err(|_| BAD)?;
    let entsize = usize::from(entsize);
    if shoff == 0 || entsize < if wide { 64 } else { 40 } {
        return Err("has no section headers, so its glibc requirements cannot be read".into());
    }
    let mut count = usize::from(count);
    if count == 0 {
        // More sections than fit in e_shnum: the count is section 0's size.
        count = section(elf, wide, shoff).ok_or(BAD)?.2;
    }
    let header =
        |i: usize| i.checked_mul(entsize).and_then(|o| o.checked_add(shoff)).and_then(|o| section(elf, wide, o));
    let mut best: Option<Version> = None;
    for i in 0..count {
        let (kind, offset, size, link) = header(i).ok_or(BAD)?;
        if kind != SHT_GNU_VERNEED {
            continue;
        }
        let (_, strtab, _, _) = header(link as usize).ok_or(BAD)?;
        let end = offset.checked_add(size).ok_or(BAD)?;
        let mut need = offset;
        // Each Verneed (a library) lists Vernaux entries (the versions needed from it); both
        // chains are bounded by the section, so a malformed file cannot loop.
        for _ in 0..size / 16 + 1 {
            if need.checked_add(16).is_none_or(|e| e > end) {
                return Err(BAD.into());
            }
            let cnt = u16_at(elf, need + 2).ok_or(BAD)?;
            let mut aux = need.checked_add(u32_at(elf, need + 8).ok_or(BAD)? as usize).ok_or(BAD)?;
            for _ in 0..cnt {
                let name = u32_at(elf, aux + 8).ok_or(BAD)? as usize;
                let name = c_str(elf, strtab.checked_add(name).ok_or(BAD)?).ok_or(BAD)?;
                if let Some(v) = name.strip_prefix("GLIBC_") {
                    if let Ok(parts) = v.split('.').map(str::parse).collect::<Result<Vec<u32>, _>>() {
                        let v = Version(parts);
                        if best.as_ref().is_none_or(|b| v > *b) {
                            best = Some(v);
                        }
                    }
                }
                let next = u32_at(elf, aux + 12).ok_or(BAD)? as usize;
                if next == 0 {
                    break;
                }
                aux = aux.checked_add(next).ok_or(BAD)?;
            }
            let next = u32_at(elf, need + 12).ok_or(BAD)? as usize;
            if next == 0 {
                break;
            }
            need = need.checked_add(next).ok_or(BAD)?;
        }
    }
    Ok(best)
}

/// A minimal ELF64 with a `.gnu.version_r` needing `versions` from libc.so.6, for tests.
#[doc(hidden)]
pub fn test_elf(versions: &[&str], tail: &[u8]) -> Vec<u8> {
    let mut strtab = b"\0libc.so.6\0".to_vec();
    let names: Vec<u32> = versions
        .iter()
        .map(|v| {
            let at = strtab.len() as u32;
            strtab.extend_from_slice(v.as_bytes());
            strtab.push(0);
            at
        })
        .collect();
    let mut verneed = Vec::new();
    let n = versions.len() as u16;
    verneed.extend_from_slice(&1u16.to_le_bytes());
    verneed.extend_from_slice(&n.to_le_bytes());
    verneed.extend_from_slice(&1u32.to_le_bytes()); // file: libc.so.6
    verneed.extend_from_slice(&16u32.to_le_bytes()); // aux right after
    verneed.extend_from_slice(&0u32.to_le_bytes());
    for (i, name) in names.iter().enumerate() {
        verneed.extend_from_slice(&0u32.to_le_bytes());
        verneed.extend_from_slice(&0u16.to_le_bytes());
        verneed.extend_from_slice(&(i as u16 + 2).to_le_bytes());
        verneed.extend_from_slice(&name.to_le_bytes());
        let next: u32 = if i + 1 < names.len() { 16 } else { 0 };
        verneed.extend_from_slice(&next.to_le_bytes());
    }
    let mut b = vec![0u8; 64];
    b[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\0");
    let str_off = b.len();
    b.extend_from_slice(&strtab);
    let need_off = b.len();
    b.extend_from_slice(&verneed);
    b.extend_from_slice(tail);
    while b.len() % 8 != 0 {
        b.push(0);
    }
    let shoff = b.len();
    let sh = |kind: u32, off: usize, size: usize, link: u32| {
        let mut h = vec![0u8; 64];
        h[4..8].copy_from_slice(&kind.to_le_bytes());
        h[24..32].copy_from_slice(&(off as u64).to_le_bytes());
        h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
        h[40..44].copy_from_slice(&link.to_le_bytes());
        h
    };
    b.extend(sh(0, 0, 0, 0));
    b.extend(sh(3, str_off, strtab.len(), 0));
    b.extend(sh(SHT_GNU_VERNEED, need_off, verneed.len(), 1));
    b[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
    b[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
    b[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_highest_glibc_version_numerically() {
        let v = max_glibc(&test_elf(&["GLIBC_2.2.5", "GLIBC_2.34", "GLIBC_2.9", "GLIBC_PRIVATE"], b"")).unwrap();
        assert_eq!(v, Some(Version(vec![2, 34])));
        assert!(v.unwrap().too_new());
        let old = max_glibc(&test_elf(&["GLIBC_2.17", "GLIBC_2.28", "GLIBC_2.3"], b"")).unwrap().unwrap();
        assert_eq!(old.to_string(), "2.28");
        assert!(!old.too_new(), "2.28 itself is fine");
        assert_eq!(max_glibc(&test_elf(&[], b"")).unwrap(), None, "no requirement: statically linked");
    }

    #[test]
    fn this_test_binary_is_read_like_readelf_reads_it() {
        // Built on a glibc system: it needs at least the x86-64 baseline GLIBC_2.2.5.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let v = max_glibc(&me).unwrap().expect("a glibc-linked test binary");
        assert!(v >= Version(vec![2, 2, 5]), "{v}");
        // Where binutils is installed, the same answer as scripts/package.sh's readelf.
        let exe = std::env::current_exe().unwrap();
        if let Ok(out) = std::process::Command::new("readelf").arg("--wide").arg("--version-info").arg(&exe).output() {
            let text = String::from_utf8_lossy(&out.stdout);
            let theirs = text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .filter_map(|w| w.strip_prefix("GLIBC_"))
                .filter_map(|v| v.split('.').map(str::parse).collect::<Result<Vec<u32>, _>>().ok())
                .map(Version)
                .max();
            assert_eq!(Some(v), theirs, "readelf reads another version");
        }
    }

    #[test]
    fn a_cut_or_malformed_file_is_an_error_not_a_panic() {
        let good = test_elf(&["GLIBC_2.34"], b"");
        for cut in [4, 20, 64, 100, good.len() - 1] {
            let _ = max_glibc(&good[..cut]);
        }
        assert!(max_glibc(&good[..good.len() - 40]).is_err(), "the verneed header cut");
        assert!(max_glibc(b"#!/bin/sh\n").is_err());
        let mut loops = good.clone();
        let n = loops.len();
        loops[n - 64 + 32..n - 64 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(max_glibc(&loops).is_err());
    }
}
