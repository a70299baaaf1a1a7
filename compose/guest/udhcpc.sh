#!/bin/sh
# busybox udhcpc's handler in the lab's guest image: applies the lease (address, routes, DNS) and says it.
say() { echo "goldstack-guest: $*" >/dev/console; }
event=$1
case "$event" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up ;;
    bound|renew)
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
        if [ -n "$staticroutes" ]; then
            # option 121: destination/prefix gateway pairs; it replaces the router option when given
            set -- $staticroutes
            while [ $# -ge 2 ]; do
                if [ "$2" = 0.0.0.0 ]; then
                    ip route replace "$1" dev "$interface"
                else
                    ip route replace "$1" via "$2" dev "$interface"
                fi
                shift 2
            done
        elif [ -n "$router" ]; then
            ip route replace default via "${router%% *}" dev "$interface"
        fi
        : >/etc/resolv.conf
        for server in $dns; do echo "nameserver $server" >>/etc/resolv.conf; done
        [ "$event" = bound ] && say "dhcp $interface $ip/${mask:-24} router ${router:-none} mtu ${mtu:-default}"
        ;;
esac
exit 0
