-- What a build (or the published database) says about itself, in meta_build_info.

-- name: k_anonymity
select max(k_anonymity) from {{ db }}.meta_build_info;
