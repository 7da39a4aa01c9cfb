// Plugin metadata (version, release date, commit) for gst::plugin_define!.
fn main() {
    gst_plugin_version_helper::info()
}
