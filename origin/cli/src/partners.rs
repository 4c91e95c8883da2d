//! `vouch partners …`: the partners of SPEC §14 (platform admin).

use serde_json::Value;

use crate::args::PartnersCommand;
use crate::client::{Call, Client};
use crate::commands::{list_text, paged, split_secret, str_field, Output};
use crate::error::Result;
use crate::render;

const PARTNER_FIELDS: [&str; 7] = [
    "partner_id",
    "name",
    "contact",
    "status",
    "created_at",
    "key_issued_at",
    "revoked_at",
];

fn table(items: &[Value]) -> String {
    render::columns(
        items,
        &[
            ("PARTNER ID", "partner_id"),
            ("NAME", "name"),
            ("CONTACT", "contact"),
            ("STATUS", "status"),
            ("CREATED", "created_at"),
        ],
    )
}

pub fn run(client: &Client, out: &Output, cmd: &PartnersCommand) -> Result<()> {
    let path = |id: &str| vec!["v1".to_owned(), "partners".to_owned(), id.to_owned()];
    match cmd {
        PartnersCommand::Create { name, contact } => {
            let body = serde_json::json!({ "name": name, "contact": contact });
            let created = client.send(Call::post(&["v1", "partners"]).json(body))?;
            out.show(&created, |created| {
                let (public, key) = split_secret(created, "key");
                format!(
                    "Created partner {}.\n{}\n\n{}\nSend it to the edge as `Authorization: Bearer <key>`; \
                     agents that let it commit get tokens with `audience={}`.",
                    str_field(created, "partner_id"),
                    render::object(&public, &PARTNER_FIELDS),
                    render::secret("Partner key", &key),
                    str_field(created, "partner_id"),
                )
            });
        }
        PartnersCommand::List { page } => {
            let list = client.send(paged(Call::get(&["v1", "partners"]), page))?;
            out.show(&list, |list| {
                list_text(list, "No partners.", table, "vouch partners list", page)
            });
        }
        PartnersCommand::Show { partner_id } => {
            let partner = client.send(Call::get(&path(partner_id)))?;
            out.show(&partner, |p| render::object(p, &PARTNER_FIELDS));
        }
        PartnersCommand::Revoke { partner_id } => {
            let partner = client.send(Call::delete(&path(partner_id)))?;
            out.show(&partner, |p| {
                format!(
                    "Partner {} is revoked: its key is refused at every edge within seconds.\n{}",
                    str_field(p, "partner_id"),
                    render::object(p, &PARTNER_FIELDS)
                )
            });
        }
        PartnersCommand::Rotate { partner_id } => {
            let mut segments = path(partner_id);
            segments.push("keys".into());
            let rotated = client.send(Call::post(&segments))?;
            out.show(&rotated, |rotated| {
                let (_, key) = split_secret(rotated, "key");
                format!(
                    "Rotated the key of partner {}; the old key is refused at every edge within seconds.\n\n{}",
                    str_field(rotated, "partner_id"),
                    render::secret("New partner key", &key)
                )
            });
        }
    }
    Ok(())
}
