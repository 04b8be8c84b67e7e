# track_fs: build rules (paths relative to the top of the tree)
