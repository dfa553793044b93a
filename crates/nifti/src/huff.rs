//! A fast Huffman-only deflate encoder (see the module code).
