#!/bin/sh
# Made by `yadokari user repo` for push deploys. It runs as you, like your CGI scripts, after
# every push to this repository; what it prints reaches `git push` as `remote:` lines.
#
# A push to the branch `git config yadokari.branch` is published: its tree is checked out into
# a new hidden folder in `git config yadokari.releases`, renamed to <time>-<short hash> once
# whole (the modes from git: 0755, 0644), and the web root (`git config yadokari.webroot`, a
# link) is switched to it in one step: a new link renamed over the old one. The newest
# `git config yadokari.keep` releases are kept. A checkout that fails publishes nothing.
set -u
umask 022

branch=$(git config yadokari.branch || echo main)
keep=$(git config yadokari.keep || echo 5)
web=$(git config yadokari.webroot) || { echo "not published: this repository has no yadokari.webroot" >&2; exit 1; }
releases=$(git config yadokari.releases) || { echo "not published: this repository has no yadokari.releases" >&2; exit 1; }
case $keep in ''|*[!0-9]*|0) keep=5 ;; esac

new=
while read -r _old sha ref; do
	[ "$ref" = "refs/heads/$branch" ] && new=$sha
done
if [ -z "$new" ]; then
	echo "nothing published: only pushes to the branch $branch are"
	exit 0
fi
case $new in
*[!0]*) ;;
*)
	echo "nothing published: the branch $branch was deleted; the site keeps serving what it served"
	exit 0
	;;
esac

mkdir -p "$releases" || { echo "not published: cannot make $releases" >&2; exit 1; }
# One publish at a time: two pushes close together must not switch out of order, nor prune the
# release the other has just switched to.
exec 9>>"$releases/.lock" && flock 9 || { echo "not published: cannot lock $releases/.lock" >&2; exit 1; }
# What a publish that was stopped half-way left behind (none runs but this one now).
rm -rf "$releases"/.*.partial "$releases"/.*.index "$releases"/.*.err 2>/dev/null
web_dir=$(dirname "$web")
web_name=$(basename "$web")
rm -f "$web_dir/.$web_name.next-"* 2>/dev/null

# What the branch points to now (a later push may have moved it since this hook began).
new=$(git rev-parse --verify --quiet "refs/heads/$branch") || exit 0
short=$(git rev-parse --short "$new")
serving=$(readlink "$web" 2>/dev/null || true)
if [ -n "$serving" ]; then
	still="the site still serves $serving"
else
	still="the site is unchanged"
fi

name="$(date -u +%Y%m%d-%H%M%S.%3N)-$short"
partial="$releases/.$name.partial"
if ! mkdir "$partial" 2>/dev/null; then
	echo "not published: cannot make $partial; $still" >&2
	exit 1
fi
if ! GIT_INDEX_FILE="$releases/.$name.index" git --work-tree="$partial" read-tree -u --reset "$new" 2>"$releases/.$name.err"; then
	why=$(tr '\n' ' ' <"$releases/.$name.err")
	rm -rf "$partial" "$releases/.$name.index" "$releases/.$name.err"
	echo "not published: the checkout of $short failed ($why); $still" >&2
	exit 1
fi
rm -f "$releases/.$name.index" "$releases/.$name.err"
release=$name
n=1
while ! mv -T -n "$partial" "$releases/$release" 2>/dev/null || [ -e "$partial" ]; do
	release="$name.$n"
	n=$((n + 1))
	if [ "$n" -gt 100 ]; then
		rm -rf "$partial"
		echo "not published: too many releases named $name; $still" >&2
		exit 1
	fi
done

# The link's text: the release, relative to the folder that holds the web root.
case $releases in
"$web_dir"/*) text=${releases#"$web_dir"/}/$release ;;
*) text=$releases/$release ;;
esac
next="$web_dir/.$web_name.next-$$"
rm -f "$next"
if ! ln -s "$text" "$next"; then
	rm -rf "${releases:?}/$release"
	echo "not published: cannot make the link $next; $still" >&2
	exit 1
fi
if [ -d "$web" ] && [ ! -L "$web" ]; then
	# Still a folder (a link was never made, or it was replaced): kept beside the releases.
	kept="$releases/$(date -u +%Y%m%d-%H%M%S)-before"
	if ! mv -T "$web" "$kept"; then
		rm -f "$next"
		rm -rf "${releases:?}/$release"
		echo "not published: cannot move the folder $web aside; $still" >&2
		exit 1
	fi
	echo "the web root was a folder; what it held is kept as $kept"
fi
if ! mv -T "$next" "$web"; then
	rm -f "$next"
	rm -rf "${releases:?}/$release"
	echo "not published: cannot switch $web; $still" >&2
	exit 1
fi

# The newest $keep releases stay (by name, which starts with the time); never the one served.
pruned=0
for old in $(ls "$releases" | grep -E '^[0-9]{8}-[0-9]{6}\.[0-9]{3}-' | sort | head -n "-$keep"); do
	[ "$old" = "$release" ] && continue
	rm -rf "${releases:?}/$old" && pruned=$((pruned + 1))
done

echo "published $short as releases/$release: $web serves it now"
if [ "$pruned" -gt 0 ]; then
	echo "removed $pruned old release(s); the newest $keep are kept"
fi
exit 0
