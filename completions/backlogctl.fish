# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_backlogctl_global_optspecs
    string join \n netns= pid= color= h/help V/version
end

function __fish_backlogctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_backlogctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_backlogctl_using_subcommand
    set -l cmd (__fish_backlogctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c backlogctl -n "__fish_backlogctl_needs_command" -l netns -d 'Work inside this network namespace: a name from `ip netns list`, or an nsfs path such as /proc/PID/ns/net (needs CAP_SYS_ADMIN)' -r
complete -c backlogctl -n "__fish_backlogctl_needs_command" -l pid -d 'Work inside the network namespace of this process, e.g. a container\'s main process' -r
complete -c backlogctl -n "__fish_backlogctl_needs_command" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c backlogctl -n "__fish_backlogctl_needs_command" -s h -l help -d 'Print help'
complete -c backlogctl -n "__fish_backlogctl_needs_command" -s V -l version -d 'Print version'
complete -c backlogctl -n "__fish_backlogctl_needs_command" -f -a "doctor" -d 'Diagnose listen-queue overflow: cause, evidence, what clients see, the exact fix'
complete -c backlogctl -n "__fish_backlogctl_needs_command" -f -a "watch" -d 'Live view of the listeners: queue peaks between refreshes, drops/s, SYN_RECV'
complete -c backlogctl -n "__fish_backlogctl_needs_command" -f -a "lab" -d 'Reproduce a connection burst against a small backlog in a private namespace, safely'
complete -c backlogctl -n "__fish_backlogctl_needs_command" -f -a "snapshot" -d 'Record listeners, queue lengths, counters and sysctls as a JSON snapshot'
complete -c backlogctl -n "__fish_backlogctl_needs_command" -f -a "plot" -d 'A recorded snapshot\'s timeline as an SVG picture: queue against B+1, drops, counters'
complete -c backlogctl -n "__fish_backlogctl_needs_command" -f -a "explain" -d 'What a counter, sysctl or column means, and its value in this namespace'
complete -c backlogctl -n "__fish_backlogctl_needs_command" -f -a "metrics" -d 'Listener state, listen counters and sysctls in Prometheus text format'
complete -c backlogctl -n "__fish_backlogctl_needs_command" -f -a "exporter" -d 'Serve the metrics over HTTP for Prometheus, collected at each scrape'
complete -c backlogctl -n "__fish_backlogctl_needs_command" -f -a "completions" -d 'Shell completion script for bash, zsh or fish, on stdout'
complete -c backlogctl -n "__fish_backlogctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -l netns -d 'Work inside this network namespace: a name from `ip netns list`, or an nsfs path such as /proc/PID/ns/net (needs CAP_SYS_ADMIN)' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -l pid -d 'Work inside the network namespace of this process, e.g. a container\'s main process' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -s w -l window -d 'Observe for this long to catch bursts and count drops (0 = one sample, no deltas)' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -l sample-interval -d 'Time between samples within the window' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -l from -d 'Diagnose a recorded snapshot instead of the live kernel' -r -F
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -s t -l tcp -d 'TCP listeners only (with -x: both)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -s x -l unix -d 'Unix-domain listeners only (with -t: both)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -l json -d 'Print the report as JSON (verdict, findings, listeners)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -l syn-recv -d 'Count SYN_RECV even if no SYN queue here has ever filled (walks every established socket)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -l no-processes -d 'Do not name the processes holding the listeners (skips reading /proc/*/fd, like `ss` without -p)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -s v -l verbose -d 'Also say what could not be observed when it cannot change the verdict (SYN_RECV not counted, processes not named)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -l all-netns -d 'Diagnose every network namespace on the host (named ones and those of processes)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -l trace -d 'Also trace every RST sent during the window (the kernel\'s tcp:tcp_send_reset tracepoint, in a private tracefs instance removed on exit): each reset\'s listener and reason, e.g. TCP_ABORT_ON_CLOSE on 127.0.0.1:8080, or NO_SOCKET on the port clients were refused on. Root, tracefs and Linux 6.10+; otherwise the counters alone are used. The namespace\'s own connections are traced too: per server the errnos its sockets got, SYNs sent again, resets received and connect latency, and connect() calls refused with EAGAIN (a full Unix listener) or EADDRNOTAVAIL, per process'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand watch" -l netns -d 'Work inside this network namespace: a name from `ip netns list`, or an nsfs path such as /proc/PID/ns/net (needs CAP_SYS_ADMIN)' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand watch" -l pid -d 'Work inside the network namespace of this process, e.g. a container\'s main process' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand watch" -s i -l interval -d 'Time between refreshes of the display' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand watch" -l sample-interval -d 'Time between samples of the hot listeners (a queue or drops in the last 5 s, or the targets\'), each asked for alone; bursts shorter than a refresh still show as peaks. The whole scope is dumped as often as 1-2.2% of a core allows, wake-ups counted (its TCP listeners between refreshes only once a connection was made: Tcp PassiveOpens)' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand watch" -s n -l count -d 'Stop after N refreshes' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand watch" -s d -l duration -d 'Stop after this long' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand watch" -l record -d 'Also write the samples as a snapshot that `doctor --from` can diagnose' -r -F
complete -c backlogctl -n "__fish_backlogctl_using_subcommand watch" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c backlogctl -n "__fish_backlogctl_using_subcommand watch" -s t -l tcp -d 'TCP listeners only (with -x: both)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand watch" -s x -l unix -d 'Unix-domain listeners only (with -t: both)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand watch" -l json -d 'One JSON object per refresh (JSON lines), then a summary object'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand watch" -s h -l help -d 'Print help'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l somaxconn -d 'net.core.somaxconn inside the lab namespace' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l backlog -d 'Backlog the server passes to listen() (50 = Java\'s ServerSocket default)' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l workers -d 'Server threads, each accepting and serving one connection at a time' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l work -d 'Time a worker spends per request' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l clients -d 'Concurrent clients' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l abort-on-overflow -d 'net.ipv4.tcp_abort_on_overflow inside the lab namespace' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l syncookies -d 'net.ipv4.tcp_syncookies inside the lab namespace' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l connect-timeout -d 'Give up on connect() after this long' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l reply-timeout -d 'Give up waiting for the reply after this long' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l ack-delay -d 'Clients hold back the handshake\'s final ACK this long (sent with the request), like a network round trip; 0 = loopback speed. At most 200ms (the kernel\'s delayed-ACK limit)' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l ramp -d 'Start the clients evenly over this long instead of all at once' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l plot -d 'Also draw the burst as an SVG picture in FILE: the clients\' outcomes and connect latencies, and the server\'s accept queue, drops and counters over time' -r -F
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l unix -d 'Burst a Unix-domain listener (an abstract name in the lab\'s namespace) instead of TCP: three clients in four connect non-blocking (EAGAIN at once when the queue is full), the fourth blocks for up to --connect-timeout'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l unread-close -d 'The server reads only the first 64 bytes of each request, replies and closes, and the clients send 16 KB requests: each client gets its reply, then "Connection reset by peer" (close() with unread data sends RST, TCPAbortOnClose). Combines with the backlog settings, so both failures show side by side'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l veth -d 'Put the clients in a second private network namespace, joined to the server\'s by a veth pair (server 10.200.0.1, clients 10.200.0.2), and record the burst in both: the report adds the clients\' side (their own counts beside their kernel\'s: connects, SYNs resent, resets; their connections to the server at the worst reading), doctor\'s findings in their namespace and whether they name the burst the server side names; --plot draws those connections on the server\'s time axis'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -l json -d 'Print the report as JSON'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand lab" -s h -l help -d 'Print help'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand snapshot" -l netns -d 'Work inside this network namespace: a name from `ip netns list`, or an nsfs path such as /proc/PID/ns/net (needs CAP_SYS_ADMIN)' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand snapshot" -l pid -d 'Work inside the network namespace of this process, e.g. a container\'s main process' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand snapshot" -s w -l window -d 'Observe for this long (e.g. 1s, 500ms); 0 takes a single sample' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand snapshot" -l sample-interval -d 'Time between samples within the window; short enough to see millisecond bursts' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand snapshot" -s o -l output -d 'Write the snapshot to FILE (atomically) instead of stdout' -r -F
complete -c backlogctl -n "__fish_backlogctl_using_subcommand snapshot" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c backlogctl -n "__fish_backlogctl_using_subcommand snapshot" -s t -l tcp -d 'TCP listeners only (with -x: both)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand snapshot" -s x -l unix -d 'Unix-domain listeners only (with -t: both)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand snapshot" -l compact -d 'One line of JSON instead of indented'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand snapshot" -l syn-recv -d 'Count SYN_RECV even if no SYN queue here has ever filled (walks every established socket)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand snapshot" -l no-processes -d 'Do not name the processes holding the listeners (skips reading /proc/*/fd, like `ss` without -p)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand snapshot" -s h -l help -d 'Print help'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand plot" -s o -l output -d 'Write the SVG to FILE (atomically) instead of stdout' -r -F
complete -c backlogctl -n "__fish_backlogctl_using_subcommand plot" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c backlogctl -n "__fish_backlogctl_using_subcommand plot" -s h -l help -d 'Print help'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand explain" -l netns -d 'Work inside this network namespace: a name from `ip netns list`, or an nsfs path such as /proc/PID/ns/net (needs CAP_SYS_ADMIN)' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand explain" -l pid -d 'Work inside the network namespace of this process, e.g. a container\'s main process' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand explain" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c backlogctl -n "__fish_backlogctl_using_subcommand explain" -s h -l help -d 'Print help'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand metrics" -l netns -d 'Work inside this network namespace: a name from `ip netns list`, or an nsfs path such as /proc/PID/ns/net (needs CAP_SYS_ADMIN)' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand metrics" -l pid -d 'Work inside the network namespace of this process, e.g. a container\'s main process' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand metrics" -s o -l output -d 'Write to FILE atomically (for node_exporter\'s textfile collector) instead of stdout' -r -F
complete -c backlogctl -n "__fish_backlogctl_using_subcommand metrics" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c backlogctl -n "__fish_backlogctl_using_subcommand metrics" -s t -l tcp -d 'TCP listeners only (with -x: both)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand metrics" -s x -l unix -d 'Unix-domain listeners only (with -t: both)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand metrics" -l all-netns -d 'Every network namespace on the host, each labelled with its pod or container'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand metrics" -s h -l help -d 'Print help'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand exporter" -l netns -d 'Work inside this network namespace: a name from `ip netns list`, or an nsfs path such as /proc/PID/ns/net (needs CAP_SYS_ADMIN)' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand exporter" -l pid -d 'Work inside the network namespace of this process, e.g. a container\'s main process' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand exporter" -l listen -d 'Address and port to serve on' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand exporter" -l timeout -d 'A scrape reports namespaces not read by then as failed; keep it below Prometheus\'s scrape_timeout (10s by default)' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand exporter" -l max-connections -d 'Connections served at once; more are answered 503' -r
complete -c backlogctl -n "__fish_backlogctl_using_subcommand exporter" -l web.config.file -d 'TLS, basic auth and response headers from FILE, in prometheus/exporter-toolkit\'s format (node_exporter\'s --web.config.file); checked at start, exit 3 if unusable' -r -F
complete -c backlogctl -n "__fish_backlogctl_using_subcommand exporter" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c backlogctl -n "__fish_backlogctl_using_subcommand exporter" -s t -l tcp -d 'TCP listeners only (with -x: both)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand exporter" -s x -l unix -d 'Unix-domain listeners only (with -t: both)'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand exporter" -l all-netns -d 'Every network namespace on the host, each labelled with its pod or container'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand exporter" -s h -l help -d 'Print help'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand completions" -l color -d 'Colour: auto (a terminal, unless NO_COLOR is set or TERM=dumb), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c backlogctl -n "__fish_backlogctl_using_subcommand completions" -s h -l help -d 'Print help'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand help; and not __fish_seen_subcommand_from doctor watch lab snapshot plot explain metrics exporter completions help" -f -a "doctor" -d 'Diagnose listen-queue overflow: cause, evidence, what clients see, the exact fix'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand help; and not __fish_seen_subcommand_from doctor watch lab snapshot plot explain metrics exporter completions help" -f -a "watch" -d 'Live view of the listeners: queue peaks between refreshes, drops/s, SYN_RECV'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand help; and not __fish_seen_subcommand_from doctor watch lab snapshot plot explain metrics exporter completions help" -f -a "lab" -d 'Reproduce a connection burst against a small backlog in a private namespace, safely'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand help; and not __fish_seen_subcommand_from doctor watch lab snapshot plot explain metrics exporter completions help" -f -a "snapshot" -d 'Record listeners, queue lengths, counters and sysctls as a JSON snapshot'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand help; and not __fish_seen_subcommand_from doctor watch lab snapshot plot explain metrics exporter completions help" -f -a "plot" -d 'A recorded snapshot\'s timeline as an SVG picture: queue against B+1, drops, counters'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand help; and not __fish_seen_subcommand_from doctor watch lab snapshot plot explain metrics exporter completions help" -f -a "explain" -d 'What a counter, sysctl or column means, and its value in this namespace'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand help; and not __fish_seen_subcommand_from doctor watch lab snapshot plot explain metrics exporter completions help" -f -a "metrics" -d 'Listener state, listen counters and sysctls in Prometheus text format'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand help; and not __fish_seen_subcommand_from doctor watch lab snapshot plot explain metrics exporter completions help" -f -a "exporter" -d 'Serve the metrics over HTTP for Prometheus, collected at each scrape'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand help; and not __fish_seen_subcommand_from doctor watch lab snapshot plot explain metrics exporter completions help" -f -a "completions" -d 'Shell completion script for bash, zsh or fish, on stdout'
complete -c backlogctl -n "__fish_backlogctl_using_subcommand help; and not __fish_seen_subcommand_from doctor watch lab snapshot plot explain metrics exporter completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
