//! The user a native service runs as, resolved the way Docker (runc)
//! resolves an image's `USER` or compose's `user`: `uid`, `uid:gid`, or
//! names looked up in the *image's* `/etc/passwd` and `/etc/group` (read
//! inside its rootfs, never the host's).
//!
//! - `name` or `uid`: the passwd entry's uid and primary group; a uid the
//!   file does not list runs with gid 0. Supplementary groups are the
//!   primary one and every group listing the user's name as a member.
//! - `user:group`: that group only, no supplementary groups.
//! - nothing: root (uid 0, gid 0) with root's groups from the image.
//!
//! The files come from the image, so they are outside input: malformed
//! lines are skipped, sizes are capped, and nothing here panics.

use super::inroot;
use std::path::{Path, PathBuf};

/// Largest passwd or group file read (Docker images hold a few KiB).
const FILE_LIMIT: u64 = 4 * 1024 * 1024;
/// Supplementary groups kept at most (the kernel's `NGROUPS_MAX`).
const MAX_GROUPS: usize = 65536;

/// Who the service process becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (`setgroups`), the primary one included.
    pub groups: Vec<u32>,
}

/// Why a user could not be resolved; the caller names the service.
#[derive(Debug, thiserror::Error)]
pub(super) enum UserError {
    #[error("user {user:?} is not `name`, `uid`, `name:group` or `uid:gid`")]
    Invalid { user: String },
    #[error("user {user:?}: no user {name:?} in {}", path.display())]
    NoSuchUser {
        user: String,
        name: String,
        path: PathBuf,
    },
    #[error("user {user:?}: no group {name:?} in {}", path.display())]
    NoSuchGroup {
        user: String,
        name: String,
        path: PathBuf,
    },
    #[error("user {user:?}: read {}: {source}", path.display())]
    Read {
        user: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A user or group as written: a number or a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id<'a> {
    Num(u32),
    Name(&'a str),
}

/// One usable `/etc/passwd` line.
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

/// One usable `/etc/group` line.
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// Resolves `user` (`None` or empty: root) against the image in `rootfs`.
pub(super) fn resolve(rootfs: &Path, user: Option<&str>) -> Result<Credentials, UserError> {
    match user.filter(|u| !u.is_empty()) {
        Some(user) => resolve_named(rootfs, user),
        // The default must not fail an image that ran before users were
        // honoured: unreadable files just mean plain root.
        None => resolve_named(rootfs, "0").or(Ok(Credentials {
            uid: 0,
            gid: 0,
            groups: vec![0],
        })),
    }
}

fn resolve_named(rootfs: &Path, user: &str) -> Result<Credentials, UserError> {
    let (user_id, group_id) = parse_spec(user)?;
    let read = |inside: &'static str| {
        let path = rootfs.join(inside.trim_start_matches('/'));
        match inroot::read_small(rootfs, inside, FILE_LIMIT) {
            Ok(text) => Ok((text.unwrap_or_default(), path)),
            Err(source) => Err(UserError::Read {
                user: user.to_string(),
                path,
                source,
            }),
        }
    };
    let (passwd, passwd_path) = read("/etc/passwd")?;
    let entries = parse_passwd(&passwd);
    let (uid, gid, name) = match user_id {
        Id::Name(name) => match entries.iter().find(|e| e.name == name) {
            Some(e) => (e.uid, e.gid, Some(e.name)),
            None => {
                return Err(UserError::NoSuchUser {
                    user: user.to_string(),
                    name: name.to_string(),
                    path: passwd_path,
                })
            }
        },
        Id::Num(uid) => match entries.iter().find(|e| e.uid == uid) {
            Some(e) => (e.uid, e.gid, Some(e.name)),
            None => (uid, 0, None),
        },
    };
    if let Some(Id::Num(gid)) = group_id {
        let groups = vec![gid];
        return Ok(Credentials { uid, gid, groups });
    }
    let (group, group_path) = read("/etc/group")?;
    let groups = parse_group(&group);
    if let Some(Id::Name(wanted)) = group_id {
        let Some(found) = groups.iter().find(|g| g.name == wanted) else {
            return Err(UserError::NoSuchGroup {
                user: user.to_string(),
                name: wanted.to_string(),
                path: group_path,
            });
        };
        let gid = found.gid;
        return Ok(Credentials {
            uid,
            gid,
            groups: vec![gid],
        });
    }
    let mut supplementary = vec![gid];
    let member_of = groups
        .iter()
        .filter(|g| name.is_some_and(|n| g.members.contains(&n)))
        .map(|g| g.gid);
    for g in member_of {
        if !supplementary.contains(&g) && supplementary.len() < MAX_GROUPS {
            supplementary.push(g);
        }
    }
    Ok(Credentials {
        uid,
        gid,
        groups: supplementary,
    })
}

/// Splits `user[:group]` into ids.
fn parse_spec(user: &str) -> Result<(Id<'_>, Option<Id<'_>>), UserError> {
    let invalid = || UserError::Invalid {
        user: user.to_string(),
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_id = parse_id(u).ok_or_else(invalid)?;
    let group_id = match g {
        Some(g) => Some(parse_id(g).ok_or_else(invalid)?),
        None => None,
    };
    Ok((user_id, group_id))
}

/// One side of a user spec: a number that fits a uid (`-1` is not one),
/// or a plain name (no spaces or control characters).
fn parse_id(part: &str) -> Option<Id<'_>> {
    if part.is_empty() || part.len() > 256 || part.contains(':') {
        return None;
    }
    if part.bytes().all(|b| b.is_ascii_digit()) {
        let n: u32 = part.parse().ok()?;
        return (n != u32::MAX).then_some(Id::Num(n));
    }
    let plain = part.chars().all(|c| !c.is_whitespace() && !c.is_control());
    plain.then_some(Id::Name(part))
}

/// The usable entries of a passwd file (`name:pw:uid:gid:...`).
fn parse_passwd(text: &str) -> Vec<PasswdEntry<'_>> {
    fields(text)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f.first().copied().filter(|n| !n.is_empty())?,
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

/// The usable entries of a group file (`name:pw:gid:member,member`).
fn parse_group(text: &str) -> Vec<GroupEntry<'_>> {
    fields(text)
        .filter_map(|f| {
            let members = f.get(3).map_or("", |m| m);
            Some(GroupEntry {
                name: f.first().copied().filter(|n| !n.is_empty())?,
                gid: f.get(2)?.parse().ok()?,
                members: members.split(',').filter(|m| !m.is_empty()).collect(),
            })
        })
        .collect()
}

/// Colon-separated fields of each line that is not blank or a comment.
fn fields(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

#[cfg(test)]
mod tests;
