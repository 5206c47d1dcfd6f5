# Sourced by the benchmark scripts (bench.sh, instructions.sh, scaling.sh).
#
# nginx_http_common WORK KEEPALIVE_REQUESTS: the http-block lines every
# benchmark's nginx shares, for its config's heredoc: no access log,
# sendfile with tcp_nopush (as commonly deployed), an open-file cache
# re-checked once a second (as holdline's file cache), keep-alive 60 s
# and KEEPALIVE_REQUESTS requests per connection, and every temp path
# beneath WORK (so that nothing is written outside the run's directory).
nginx_http_common() {
    local work=$1 requests=$2
    cat <<NGINX
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=1024 inactive=20s;
    open_file_cache_valid 1s;
    keepalive_timeout 60;
    keepalive_requests $requests;
    server_tokens off;
    client_body_temp_path $work/tmp;
    proxy_temp_path $work/tmp;
    fastcgi_temp_path $work/tmp;
    uwsgi_temp_path $work/tmp;
    scgi_temp_path $work/tmp;
NGINX
}
