#!/usr/bin/env python3
"""Generates a stoney backup world for the notification benchmark.

usage: notify_gen.py OUTDIR N

Writes OUTDIR/world.ldif (base tree, 10 resellers, N/4 people, N accounts) and each
account's home OUTDIR/homes/<uid>/incoming/pc/.sepiola_backup/ with backupStarted.xml,
backupEnded.xml and scheduler.xml. About 5 % of the accounts are over quota, 3 % missed
their schedule, 3 % failed, 2 % run an old client and 2 % never backed up.
"""
import os, sys, random

out, n = sys.argv[1], int(sys.argv[2])
base = "dc=stoney-cloud,dc=org"
random.seed(7)
homes = os.path.join(out, "homes")
os.makedirs(homes, exist_ok=True)
ldif = open(os.path.join(out, "world.ldif"), "w")
w = ldif.write
w(f"dn: {base}\nobjectClass: dcObject\nobjectClass: organization\ndc: stoney-cloud\no: bench\n\n")
for ou in ["ou=people", "ou=services", "ou=backup,ou=services", "ou=accounts,ou=backup,ou=services",
           "ou=configuration,ou=backup,ou=services", "ou=reseller,ou=configuration,ou=backup,ou=services"]:
    name = ou.split(",")[0][3:]
    w(f"dn: {ou},{base}\nobjectClass: organizationalUnit\nou: {name}\n\n")
for r in range(10):
    rdn = f"uid={1000000 + r},ou=reseller,ou=configuration,ou=backup,ou=services,{base}"
    w(f"dn: {rdn}\nobjectClass: account\nuid: {1000000 + r}\n\n")
    w(f"dn: ou=notifications,{rdn}\nobjectClass: organizationalUnit\nobjectClass: sstBackupNotifications\n"
      f"ou: notifications\nsstMailTo: Desk <desk@r{r}.example>\nsstNotificationWarning: quota\n"
      f"sstNotificationWarning: unsuccessful\nsstNotificationWarning: nobackup\n\n")
    w(f"dn: ou=settings,{rdn}\nobjectClass: organizationalUnit\nobjectClass: sstBackupSettings\nou: settings\n"
      f"sstMailFrom: backup@r{r}.example\npreferredLanguage: {'de-CH' if r % 2 else 'en'}\n"
      f"sstNotificationWarningLevel: 85\nsstBackupWarningOn: TRUE\nsstBackupWarningDays: 3\n"
      f"sstBackupWarningNumbers: 1\nsstNotificationWarningMedium: mail\n\n")
for p in range(n // 4 + 1):
    w(f"dn: uid={3000000 + p},ou=people,{base}\nobjectClass: inetOrgPerson\nobjectClass: sstPerson\n"
      f"uid: {3000000 + p}\ncn: Person {p}\nsn: {p}\nmail: person{p}@example.com\n\n")

CL = "<client><identifier>sepiola</identifier><version>{v}</version><operatingsystem>Linux</operatingsystem></client>"
SCHED = ("<?xml version=\"1.0\"?>\n<online_backup_schedule><custom_online_backup><minutes><minute_selected>00</minute_selected>"
         "</minutes><hours><hour_selected>02</hour_selected></hours><days_of_month><every_day_of_month>*</every_day_of_month>"
         "</days_of_month><months><everymonth>*</everymonth></months><days_of_week><every_day_of_week>*</every_day_of_week>"
         "</days_of_week><timezone>+01:00</timezone></custom_online_backup>{c}</online_backup_schedule>\n")
for i in range(n):
    uid = 4000000 + i
    home = os.path.join(homes, str(uid))
    x = random.random()
    quota = 10 * 2**30
    used = int(quota * (0.9 if x < 0.05 else 0.4))
    mail = f"mail: it{i}@example.com\n" if i % 3 else f"sstBelongsToPersonUID: {3000000 + i // 4}\n"
    w(f"dn: uid={uid},ou=accounts,ou=backup,ou=services,{base}\nobjectClass: account\nobjectClass: sstBackup\n"
      f"objectClass: sstRelationship\nuid: {uid}\nhost: bench\nhomeDirectory: {home}\nsstQuota: {quota}\n"
      f"sstBackupSize: {used}\nsstIncrementSize: 0\nsstIsActive: TRUE\n{mail}"
      f"sstBelongsToResellerUID: {1000000 + i % 10}\nsstBelongsToCustomerUID: 2000001\n\n")
    if 0.98 <= x:  # never used
        os.makedirs(home, exist_ok=True)
        os.utime(home, (1700000000, 1700000000))
        continue
    m = os.path.join(home, "incoming", "pc", ".sepiola_backup")
    os.makedirs(m, exist_ok=True)
    v = "2.1.0" if 0.95 <= x < 0.97 else "2.5.0"
    c = CL.format(v=v)
    start = "2026-11-17T02:00:05+01:00" if 0.05 <= x < 0.08 else "2026-11-21T02:00:05+01:00"
    ok = "0" if 0.08 <= x < 0.11 else "1"
    open(os.path.join(m, "backupStarted.xml"), "w").write(
        f"<?xml version=\"1.0\"?>\n<backup_started><startdate>{start}</startdate><id>{i}</id>{c}</backup_started>\n")
    open(os.path.join(m, "backupEnded.xml"), "w").write(
        f"<?xml version=\"1.0\"?>\n<backup_ended><enddate>{start[:14]}30:00+01:00</enddate><id>{i}</id>"
        f"<success>{ok}</success>{c}</backup_ended>\n")
    open(os.path.join(m, "scheduler.xml"), "w").write(SCHED.format(c=c))
ldif.close()
