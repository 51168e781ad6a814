//! Folders and permissions: `folder`, `foldercontents` (what each folder holds),
//! `groups` and `perm_upload` (a group's access to an upload).

/// `foldercontents_mode` of an upload in a folder.
pub const CONTENTS_UPLOAD: i32 = 2;
/// `perm_upload.perm` of the group that owns an upload (`PERM_ADMIN`).
pub const PERM_ADMIN: i32 = 10;

/// FOSSology's top folder: the lowest `folder_pk` (1 on a fresh site), None when there
/// is no folder at all.
pub fn top_folder(c: &mut impl postgres::GenericClient) -> Result<Option<i32>, postgres::Error> {
    Ok(c.query_opt("SELECT min(folder_pk) FROM folder", &[])?
        .and_then(|r| r.get::<_, Option<i32>>(0)))
}

/// The folders whose number or name is `folder` (several when names repeat).
pub fn find_folders(c: &mut postgres::Client, folder: &str) -> Result<Vec<i32>, postgres::Error> {
    Ok(c.query(
        "SELECT folder_pk FROM folder WHERE folder_pk::text = $1 OR folder_name = $1",
        &[&folder],
    )?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// The groups whose number or name is `group` (several when names repeat).
pub fn find_groups(c: &mut postgres::Client, group: &str) -> Result<Vec<i32>, postgres::Error> {
    Ok(c.query(
        "SELECT group_pk FROM groups WHERE group_pk::text = $1 OR group_name = $1",
        &[&group],
    )?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// Puts `upload` in `folder` (so it shows in Browse).
pub fn add_upload(
    c: &mut impl postgres::GenericClient,
    folder: i32,
    upload: i32,
) -> Result<(), postgres::Error> {
    c.execute(
        "INSERT INTO foldercontents (parent_fk, foldercontents_mode, child_id) VALUES ($1, $2, $3)",
        &[&folder, &CONTENTS_UPLOAD, &upload],
    )?;
    Ok(())
}

/// Gives `group` admin rights on `upload`.
pub fn grant_upload(
    c: &mut impl postgres::GenericClient,
    upload: i32,
    group: i32,
) -> Result<(), postgres::Error> {
    c.execute(
        "INSERT INTO perm_upload (perm, upload_fk, group_fk) VALUES ($1, $2, $3)",
        &[&PERM_ADMIN, &upload, &group],
    )?;
    Ok(())
}
