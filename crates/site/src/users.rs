//! FOSSology's `users` table as its web UI reads it for a login (`core-auth.php`
//! `checkUsernameAndPassword`): `user_pass` is a PHP `password_hash()` (bcrypt, `$2y$...`)
//! or, for accounts older than that, `sha1(user_seed . password)` in hex; `user_status` must
//! be `active`; `user_perm` is the plugin level (`PLUGIN_DB_*` in `FO_Plugin.php`; empty
//! means admin).

/// `PLUGIN_DB_READ`: may read.
pub const PLUGIN_DB_READ: i32 = 1;
/// `PLUGIN_DB_WRITE`: may upload and change.
pub const PLUGIN_DB_WRITE: i32 = 3;
/// `PLUGIN_DB_ADMIN`: may add and delete users.
pub const PLUGIN_DB_ADMIN: i32 = 10;

/// The row a login needs.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub pass: Option<String>,
    pub seed: Option<String>,
    /// Plugin level; FOSSology treats an empty one as admin.
    pub perm: i32,
    pub active: bool,
}

/// The user `name`, or None. `Default User` (FOSSology's anonymous placeholder) never logs in.
pub fn find(c: &mut postgres::Client, name: &str) -> Result<Option<User>, postgres::Error> {
    if name.is_empty() || name == "Default User" {
        return Ok(None);
    }
    let row = c.query_opt(
        "SELECT user_name, user_pass, user_seed, user_perm, COALESCE(user_status, 'active') \
         FROM users WHERE user_name = $1",
        &[&name],
    )?;
    Ok(row.map(|r| User {
        name: r.get(0),
        pass: r.get(1),
        seed: r.get(2),
        perm: r.get::<_, Option<i32>>(3).unwrap_or(PLUGIN_DB_ADMIN),
        active: r.get::<_, String>(4) == "active",
    }))
}

/// The user FOSSology's own uploads from the command line go to: `fossy` (the installer's
/// administrator; its key differs between sites), else the first user, else 1.
pub fn upload_user(c: &mut impl postgres::GenericClient) -> Result<i32, postgres::Error> {
    Ok(c.query_opt(
        "SELECT user_pk FROM users ORDER BY user_name <> 'fossy', user_pk LIMIT 1",
        &[],
    )?
    .map(|r| r.get(0))
    .unwrap_or(1))
}

/// The group FOSSology's login picks for `user`: `users.group_fk`, else the group named
/// after the user that the user belongs to, else its first group. None when it has none.
pub fn default_group(
    c: &mut impl postgres::GenericClient,
    user: i32,
) -> Result<Option<i32>, postgres::Error> {
    Ok(c.query_opt(
        "SELECT coalesce(u.group_fk,
                    (SELECT g.group_pk FROM groups g
                     JOIN group_user_member m ON m.group_fk = g.group_pk
                     WHERE m.user_fk = u.user_pk
                     ORDER BY g.group_name = u.user_name DESC, g.group_pk LIMIT 1))
             FROM users u WHERE u.user_pk = $1",
        &[&user],
    )?
    .and_then(|r| r.get::<_, Option<i32>>(0)))
}
