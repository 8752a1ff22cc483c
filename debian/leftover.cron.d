# /etc/cron.d/leftover: kill processes of users with no Slurm job on this node.
# Every ten minutes; leftover itself waits a random 0-30 s (slew, slew_max in
# /etc/leftover.conf) before asking Slurm, so nodes do not ask all at once.
# Where systemd runs, leftover.timer does this instead and this line does
# nothing (systemctl list-timers leftover.timer). See leftover(8).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
*/10 * * * * root test -e /run/systemd/system || { test -x /usr/sbin/leftover && /usr/sbin/leftover; }
