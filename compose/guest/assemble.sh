#!/bin/sh
# Runs in the guest image's builder container (compose/guestimage.py): Debian's kernel, busybox and dropbear
# become OUT, a raw disk a BIOS boots: syslinux's MBR, one FAT partition holding syslinux, the kernel and an
# initramfs whose /init is compose/guest/init. Nothing is mounted (mtools writes the FAT image) and no SSH
# host key is made here: the guest makes its own at first boot.
set -eu
out=$1
src=$(dirname "$0")
work=$(mktemp -d)
root=$work/root
kver=$(ls /lib/modules | sort -V | tail -n 1)

mkdir -p "$root/bin" "$root/sbin" "$root/etc/acpi/PWRF" "$root/etc/dropbear" "$root/lib/modules" \
         "$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/tmp" "$root/root" "$root/var/log"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
install -m 0755 "$src/init" "$root/init"
install -m 0755 "$src/udhcpc.sh" "$root/etc/udhcpc.sh"
printf '#!/bin/sh\necho "goldstack-guest: power button, powering off" >/dev/console\nsync\npoweroff -f\n' \
    >"$root/etc/acpi/PWRF/00000080"
chmod 0755 "$root/etc/acpi/PWRF/00000080"
printf '#!/bin/sh\n# the guest logs in as root: sudo only runs the command\nexec "$@"\n' >"$root/bin/sudo"
chmod 0755 "$root/bin/sudo"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:*:1::::::\n' >"$root/etc/shadow"
printf 'root:x:0:\n' >"$root/etc/group"
printf '/bin/sh\n' >"$root/etc/shells"
chmod 0600 "$root/etc/shadow"

# The drivers a nova guest needs that Debian builds as modules, with what they depend on, in load order.
: >"$root/etc/modules.order"
for module in $GUEST_MODULES; do
    modprobe -S "$kver" --show-depends "$module"
done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r path; do
    name=$(basename "$path")
    case "$path" in
        *.xz) name=${name%.xz}; xz -dc "$path" >"$root/lib/modules/$name" ;;
        *.zst) name=${name%.zst}; zstd -qdc "$path" >"$root/lib/modules/$name" ;;
        *) cp "$path" "$root/lib/modules/$name" ;;
    esac
    echo "$name" >>"$root/etc/modules.order"
done

cp /usr/sbin/dropbear "$root/sbin/dropbear"
for lib in $(ldd /usr/sbin/dropbear | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

(cd "$root" && find . | sort | busybox cpio -o -H newc 2>/dev/null) | gzip -9n >"$work/initrd.gz"
cp "/boot/vmlinuz-$kver" "$work/vmlinuz"
cat >"$work/syslinux.cfg" <<EOF
DEFAULT guest
PROMPT 0
TIMEOUT 1
LABEL guest
  LINUX /vmlinuz
  INITRD /initrd.gz
  APPEND console=tty0 console=ttyS0,115200n8 quiet no_timer_check
EOF

kib=$(( $(du -kc "$work/vmlinuz" "$work/initrd.gz" | tail -n 1 | cut -f 1) + 2048 ))
mkfs.vfat -n GUEST -C "$work/boot.fat" "$kib" >/dev/null
mcopy -i "$work/boot.fat" "$work/vmlinuz" "$work/initrd.gz" "$work/syslinux.cfg" ::/
syslinux --install "$work/boot.fat"
sectors=$(( kib * 2 ))
truncate -s $(( (2048 + sectors + 2048) * 512 )) "$out"
printf 'label: dos\nstart=2048, size=%s, type=6, bootable\n' "$sectors" | sfdisk --quiet "$out"
dd if="$work/boot.fat" of="$out" bs=512 seek=2048 conv=notrunc,sparse status=none
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$out" bs=440 count=1 conv=notrunc status=none
echo "kernel $kver, initramfs $(du -k "$work/initrd.gz" | cut -f 1) KiB, modules: $(tr '\n' ' ' <"$root/etc/modules.order")"
rm -rf "$work"
